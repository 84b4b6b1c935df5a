"""What RLIPv2's own pre-training datasets return for `sgpipe export --format rlipv2`, committed as a fixture.

From the repository root, with sgpipe's Python (one command; see README.md next to this file):

    python tools/rlipv2_reference/make_loader_reference.py --rlipv2-python /work/rlipv2-env/bin/python \
        --rlipv2-src /work/rlipv2-src --fixture tests/tools/rlipv2_fixtures/loaders.json

1. Builds the small corpus of `tests/helpers/rlipv2_corpus.py` (COCO and Objects365 style, with images),
   exports it with the `sgpipe export` command and lays the images out where RLIPv2 opens them.
2. Runs itself (`--load`) with RLIPv2's Python inside RLIPv2's checkout: `datasets.mixed_dataset.
   MixedRelDetection` and `datasets.coco.CocoRLIPDetection`, imported and called as they are (img_set
   'pretrain', transforms None, 200 queries), under each setting of `rlipv2_corpus.CASES`; every item's
   image size, the files it opened and its whole target (boxes, labels, classes, pairs, verb labels).
3. Writes the fixture: the exported files RLIPv2 was given, and what it returned.

tests/tools/test_rlipv2_loaders.py rebuilds the corpus, requires its export to equal the files RLIPv2 loaded,
and sgpipe's reader of RLIPv2 files (tests/helpers/rlipv2_reader.py) to derive RLIPv2's recorded targets.
The `--load` side imports only the standard library and RLIPv2's own code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RLIPV2_FILES = ("datasets/mixed_dataset.py", "datasets/coco.py")


def _plain(value):
    """Tensors and tuples as JSON lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_with_rlipv2(spec_path: Path, result_path: Path) -> None:
    """RLIPv2's side: run its loaders as the spec says; every item's target, as plain JSON."""
    spec = json.loads(spec_path.read_text())
    root = Path(spec["root"])
    sys.path.insert(0, spec["rlipv2_src"])
    import PIL.Image

    opened: list[str] = []
    pil_open = PIL.Image.open

    def recording_open(path, *args, **kwargs):  # which files the loader reads, nothing else changed
        opened.append(Path(path).relative_to(root).as_posix())
        return pil_open(path, *args, **kwargs)

    PIL.Image.open = recording_open
    import datasets.coco
    import datasets.mixed_dataset

    loaders = {
        "MixedRelDetection": datasets.mixed_dataset.MixedRelDetection,
        "CocoRLIPDetection": datasets.coco.CocoRLIPDetection,
    }
    results = []
    for case in spec["cases"]:
        arguments = dict(case["arguments"])
        for key in ("coco2017_folder", "o365_folder"):
            if arguments.get(key):
                arguments[key] = Path(arguments[key])

        def build():
            return loaders[case["loader"]](img_set="pretrain", transforms=None, num_queries=200, **arguments)

        as_is = _first_item_error(build())
        supplied = _supply_missing_names(datasets.coco, datasets.mixed_dataset) if as_is else []
        try:
            data = build()
            items = []
            for index in range(len(data)):
                opened.clear()
                image, target = data[index]
                item = {"opened": list(opened), "image_size": list(image.size)}
                items.append({**item, **{key: _plain(value) for key, value in sorted(target.items())}})
        finally:
            for name in supplied:  # each case meets RLIPv2's module as it is
                delattr(datasets.coco, name)
        results.append(
            {"name": case["name"], "as_is_error": as_is, "names_supplied": supplied, "length": len(data),
             "items": items}
        )
    result_path.write_text(json.dumps(results))


def _first_item_error(data) -> str | None:
    """The error RLIPv2's loader raises on its first item, as it is; None when it reads it."""
    try:
        data[0]
    except Exception as error:  # noqa: BLE001 - recorded in the fixture
        return f"{type(error).__name__}: {error}"
    return None


# Names datasets/coco.py's CocoRLIPDetection calls but its module never imports: PIL's Image and three
# helpers of its sibling datasets/mixed_dataset.py (RLIPv2's own scripts never use this class).
MISSING_IN_COCO = ("Image", "add_local_object_id", "unique_name_dict_from_anno", "unique_name_dict_from_list")


def _supply_missing_names(coco_module, mixed_module) -> list[str]:
    """Give datasets/coco.py the names it lacks, taken from where RLIPv2 defines them; which ones."""
    import PIL.Image

    supplied = []
    for name in MISSING_IN_COCO:
        if not hasattr(coco_module, name):
            setattr(coco_module, name, PIL.Image if name == "Image" else getattr(mixed_module, name))
            supplied.append(name)
    return supplied


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_fixture(rlipv2_python: str, rlipv2_src: Path, fixture: Path, work: Path) -> None:
    """sgpipe's side: the corpus and its export, RLIPv2 run on them, the fixture written."""
    sys.path.insert(0, str(REPO))
    from tests.helpers.rlipv2_corpus import CASES, export_corpus, export_files, loader_arguments

    root = export_corpus(work / "corpus")
    cases = [{**case, "arguments": loader_arguments(root, case)} for case in CASES]
    spec, result = work / "spec.json", work / "result.json"
    spec.write_text(json.dumps({"root": str(root), "rlipv2_src": str(rlipv2_src), "cases": cases}))
    command = [rlipv2_python, str(Path(__file__).resolve()), "--load", str(spec), "--result", str(result)]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    subprocess.run(command, check=True, cwd=rlipv2_src, env=env, stdout=subprocess.DEVNULL)
    returned = {entry["name"]: entry for entry in json.loads(result.read_text())}
    document = {
        "made_by": "tools/rlipv2_reference/make_loader_reference.py",
        "rlipv2_files": {name: _sha256(rlipv2_src / name) for name in RLIPV2_FILES},
        "exports": export_files(root),
        "cases": [
            {**case, **{key: value for key, value in returned[case["name"]].items() if key != "name"}}
            for case in CASES
        ],
    }
    fixture.parent.mkdir(parents=True, exist_ok=True)
    fixture.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rlipv2-python", help="a Python with RLIPv2's requirements (README.md)")
    parser.add_argument("--rlipv2-src", type=Path, help="RLIPv2's checkout (its datasets/ and util/)")
    parser.add_argument("--fixture", type=Path, default=REPO / "tests/tools/rlipv2_fixtures/loaders.json")
    parser.add_argument("--work", type=Path, help="folder for the corpus (default: a temporary one)")
    parser.add_argument("--load", type=Path, help=argparse.SUPPRESS)  # RLIPv2's side
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load_with_rlipv2(args.load, args.result)
        return
    if not (args.rlipv2_python and args.rlipv2_src):
        parser.error("--rlipv2-python and --rlipv2-src are required")
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        make_fixture(args.rlipv2_python, args.rlipv2_src.resolve(), args.fixture, args.work)
        return
    with tempfile.TemporaryDirectory() as work:
        make_fixture(args.rlipv2_python, args.rlipv2_src.resolve(), args.fixture, Path(work))


if __name__ == "__main__":
    main()
