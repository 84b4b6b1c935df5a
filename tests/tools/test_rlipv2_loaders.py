"""`sgpipe export --format rlipv2` against what RLIPv2's own loaders did with it, recorded in
`rlipv2_fixtures/loaders.json` by tools/rlipv2_reference/make_loader_reference.py (RLIPv2's
`MixedRelDetection` and `CocoRLIPDetection` run on this corpus's export): the export must equal the files
RLIPv2 loaded, and sgpipe's reader of RLIPv2 files (tests/helpers/rlipv2_reader.py, which the other export
tests use) must derive the targets RLIPv2 returned.

A change to the export fails the first test until the fixture is regenerated with RLIPv2's code (the one
command in tools/rlipv2_reference/README.md), which shows what RLIPv2 makes of the new files.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.rlipv2_corpus import CASES, export_corpus, export_files, loader_arguments
from tests.helpers.rlipv2_reader import CocoRLIPReader, MixedRelReader

FIXTURE = Path(__file__).parent / "rlipv2_fixtures" / "loaders.json"
RECORDED = json.loads(FIXTURE.read_text())
SCRIPT = Path(__file__).parents[2] / "tools" / "rlipv2_reference" / "make_loader_reference.py"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return export_corpus(tmp_path_factory.mktemp("rlipv2"))


def test_the_export_is_the_files_rlipv2_loaded(corpus):
    assert export_files(corpus) == RECORDED["exports"]
    assert [{key: case[key] for key in CASES[0]} for case in RECORDED["cases"]] == CASES


def test_rlipv2s_coco_rlip_detection_reads_nothing_as_it_is():
    """Its module calls `Image` and three helpers of datasets/mixed_dataset.py it never imports (RLIPv2's
    scripts never use the class): the fixture holds its targets with those names supplied."""
    for case in RECORDED["cases"]:
        if case["loader"] == "CocoRLIPDetection":
            assert case["as_is_error"] == "NameError: name 'Image' is not defined" and case["names_supplied"]
        else:
            assert case["as_is_error"] is None and case["names_supplied"] == []


def _reader(root, case):
    arguments = loader_arguments(root, case)
    anno, vocabulary = Path(arguments.pop("anno_file")), arguments.pop("keep_names_freq_file")
    vocabulary = vocabulary and Path(vocabulary)
    options = {key: arguments.pop(key) for key in ("relation_threshold", "use_all_text_labels")}
    folders = {key: Path(value) for key, value in arguments.items() if key.endswith("_folder")}
    if case["loader"] == "CocoRLIPDetection":
        return CocoRLIPReader(anno, vocabulary, folders["coco2017_folder"], **options)
    return MixedRelReader(anno, arguments["dataset"], vocabulary, **options, **folders)


def _as_rlipv2_target(item, root):
    """A reader item in the form of RLIPv2's `(image, target)`: the target's fields, the image's size and
    the file opened."""
    width, height = item["size"]
    boxes = item["boxes"]
    labels = [label for _, label in item["labels"]]
    pairs = item["pairs"]
    return {
        "opened": [item["path"].relative_to(root).as_posix()],
        "image_size": [width, height],
        "image_id": item["image_id"],
        "orig_size": [height, width],
        "size": [height, width],
        "boxes": boxes,
        "area": [(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes],
        "iscrowd": [0] * len(boxes),
        "labels": labels,
        "obj_classes": item["obj_classes"],
        "verb_classes": item["verb_classes"],
        "sub_labels": [labels[s] for s, _ in pairs],
        "obj_labels": [labels[o] for _, o in pairs],
        "sub_boxes": [boxes[s] for s, _ in pairs],
        "obj_boxes": [boxes[o] for _, o in pairs],
        "verb_labels": item["verb_labels"],
    }


@pytest.mark.parametrize("case", RECORDED["cases"], ids=[case["name"] for case in RECORDED["cases"]])
def test_the_reader_derives_what_rlipv2s_loaders_returned(corpus, case):
    reader = _reader(corpus, case)
    assert len(reader) == case["length"]
    assert [_as_rlipv2_target(reader[i], corpus) for i in range(len(reader))] == case["items"]


@pytest.mark.slow
def test_the_fixture_regenerates_with_rlipv2s_code(tmp_path):
    """Needs RLIPv2's checkout and environment (tools/rlipv2_reference/README.md): RLIPV2_PYTHON,
    RLIPV2_SRC."""
    python, src = os.environ.get("RLIPV2_PYTHON"), os.environ.get("RLIPV2_SRC")
    if not (python and src):
        pytest.skip("RLIPV2_PYTHON / RLIPV2_SRC not set")
    fresh = tmp_path / "loaders.json"
    command = [sys.executable, str(SCRIPT), "--rlipv2-python", python, "--rlipv2-src", src]
    command += ["--fixture", str(fresh)]
    subprocess.run(command, check=True, timeout=600, stdout=subprocess.DEVNULL)
    assert json.loads(fresh.read_text()) == RECORDED
