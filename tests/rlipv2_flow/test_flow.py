"""`pipelines/rlipv2_coco.yaml` and `rlipv2_objects365.yaml` give RLIPv2's own labels: the proof against
RLIPv2's code run.

The fixtures (fixtures/coco.json, o365.json) were written by tools/rlipv2_reference/make_flow_reference.py,
which ran RLIPv2's SceneGraphParser step, its candidate builder (COCO or Objects365 helper), its tagger loop
and its deduplication on generated images with ten captions each (nine COCO images, one with 1760
candidate pairs: 18 groups in two batches of texts; three Objects365 images), with the reduced R-Tagger
filled by `deterministic_fill`. Here sgpipe's recipe runs on the same images, boxes and captions (a COCO
captions file, `caption.enabled=false`) with that tagger converted.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from sgpipe.config import load_config
from sgpipe.models.device import one_thread
from sgpipe.run.sources import entry_to_sample
from sgpipe.source.coco import load_coco_entries
from sgpipe.source.coco_captions import load_captions
from sgpipe.stages.base import reraise
from sgpipe.stages.parse_sng import SngParseStage
from sgpipe.stages.tag_rlipv2 import RLIPv2TagStage
from sgpipe.tools.export import export
from tests.helpers.ray_local import local_ray
from tests.helpers.rlipv2_flow import FIXTURES, flow_distance, load_flow_fixture, write_flow_inputs, write_flow_tagger
from tests.helpers.runs import QUIET

pytest.importorskip("sng_parser", reason="parse.backend sng needs SceneGraphParser (sgpipe[rlipv2])")

RECIPES = Path(__file__).resolve().parents[2] / "pipelines"
RECIPE = {"coco": RECIPES / "rlipv2_coco.yaml", "o365": RECIPES / "rlipv2_objects365.yaml"}
TOLERANCE = 1e-4  # confidences: fp32 CPU, port vs RLIPv2's code (and sgpipe's records round to 1e-4 / 2)
RELATIONS = {"coco": 2874, "o365": 488}  # RLIPv2's relations in each fixture


@pytest.fixture(scope="module", params=["coco", "o365"])
def dataset(request):
    return request.param


@pytest.fixture(scope="module")
def fixture(dataset):
    return load_flow_fixture(dataset)


@pytest.fixture(scope="module")
def inputs(fixture, tmp_path_factory):
    return write_flow_inputs(fixture, tmp_path_factory.mktemp("flow-inputs"))


@pytest.fixture(scope="module")
def ray_session():
    with one_thread(), local_ray(num_cpus=2):
        yield


@pytest.fixture(scope="module")
def tagger_folder(tmp_path_factory):
    """The reduced R-Tagger both fixtures were made with, as a converted folder."""
    coco, o365 = load_flow_fixture("coco"), load_flow_fixture("o365")
    assert coco["config"] == o365["config"]
    return write_flow_tagger(coco, tmp_path_factory.mktemp("rtagger") / "model")


def _config(dataset: str, inputs: dict, out: Path, *more: str):
    return load_config(RECIPE[dataset], [
        f"source.instances={inputs['instances']}", f"source.images={inputs['images']}",
        f"source.captions={inputs['captions']}", "caption.enabled=false", f"output.dir={out}", *more,
    ])


def _samples(inputs: dict, config) -> list:
    entries, _, _ = load_coco_entries(str(inputs["instances"]), load_captions(str(inputs["captions"])))
    return [entry_to_sample(e, config.source.name) for e in entries]


def test_candidates_are_rlipv2s_groups(dataset, fixture, inputs, tmp_path):
    """Parse and tag alone: the candidate pairs (indices of RLIPv2's kept boxes) and each group's texts."""
    config = _config(dataset, inputs, tmp_path / "out")
    samples = _samples(inputs, config)
    for stage in (SngParseStage(config.parse), RLIPv2TagStage(config.tag)):
        stage.handler = reraise
        stage.setup()
        stage(samples)
    assert all(s.ok for s in samples)
    for sample in samples:
        boxes = [b.id for b in sample.objects if not b.iscrowd]  # what RLIPv2's CocoDetection keeps, in order
        pairs = [[boxes.index(r.subject_id), boxes.index(r.object_id)] for r in sample.relations]
        groups = [[pairs[i : i + 100], list(dict.fromkeys(r.predicate_text for r in sample.relations[i : i + 100]))]
                  for i in range(0, len(pairs), 100)]
        # RLIPv2 also writes an empty last group when the count is a multiple of 100 (0 included): it scores nothing
        expected = [g for g in fixture["candidates"][str(sample.image_id)] if g[0]]
        assert groups == expected, sample.image_id
    largest = max(samples, key=lambda s: len(s.relations))
    assert len(largest.relations) == {"coco": 1760, "o365": 160}[dataset]
    assert largest.counters["tag_boxes_excluded"] == 1  # its crowd box


@pytest.fixture(scope="module")
def flow_run(dataset, inputs, ray_session, tagger_folder, tmp_path_factory):
    """The recipe through `sgpipe run`'s machinery on a local Ray, then `export --format rlipv2`."""
    from sgpipe.run.lifecycle import run_pipeline

    work = tmp_path_factory.mktemp("flow-run")
    out = work / "out"
    config = _config(dataset, inputs, out, f"verify.checkpoint={tagger_folder}", "output.samples_per_shard=4",
                     "run.workers=1", "run.gpus_per_worker=0", "run.cpus_per_worker=1", "run.device=cpu",
                     "run.decode_threads=2")
    run_pipeline(config, QUIET)
    export(out, "rlipv2", work / "labels.json", min_confidence=0.05)
    return out, json.loads((work / "labels.json").read_text())


def test_exported_labels_equal_rlipv2s(dataset, fixture, flow_run):
    _, exported = flow_run
    distance = flow_distance(fixture["output"], exported)
    assert distance.only_sgpipe == [] and distance.only_rlipv2 == []
    assert distance.shared == sum(len(item["relations"]) for item in fixture["output"]) == RELATIONS[dataset]
    assert distance.max_confidence_difference < TOLERANCE
    texts = {r["predicate"] for item in exported for r in item["relationships"]}
    assert {"sitting on", "riding"} <= texts  # surface texts, never lemmas


def test_every_scored_cell_is_counted_as_rlipv2_counts_it(fixture, flow_run):
    """Cells above the threshold before deduplication: as many as RLIPv2's raw output holds, which fixes
    how many times each pair was scored against each text (its groups and merged text lists)."""
    out, _ = flow_run
    counters = json.loads((out / "stats.json").read_text())["counters"]
    assert counters["verify_cells_above_threshold"] == sum(fixture["relations_before_deduplication"].values())
    assert counters["verify_groups"] == sum(1 for groups in fixture["candidates"].values() for g in groups if g[0])


def test_candidates_first_tagger_later_is_the_same_flow(dataset, fixture, inputs, ray_session, tagger_folder, tmp_path):
    """RLIPv2's two steps as two commands: the recipe without its verifier keeps the candidates in RLIPv2's
    order; `sgpipe reverify --set verify.texts=rlipv2` then tags them as RLIPv2's loop does."""
    from sgpipe.run.reverify import reverify
    from sgpipe.run.lifecycle import run_pipeline

    if dataset != "coco":
        pytest.skip("one dataset suffices: the stages are those of the recipe run")
    config = _config(dataset, inputs, tmp_path / "candidates", "verify.enabled=false", "run.workers=1",
                     "run.gpus_per_worker=0", "run.cpus_per_worker=1", "run.device=cpu", "run.decode_threads=2")
    run_pipeline(config, QUIET)
    with one_thread():
        reverify(tmp_path / "candidates", tagger_folder, tmp_path / "tagged",
                 ["verify.texts=rlipv2", "verify.dtype=float32", "run.device=cpu"])
    export(tmp_path / "tagged", "rlipv2", tmp_path / "labels.json", min_confidence=0.05)
    distance = flow_distance(fixture["output"], json.loads((tmp_path / "labels.json").read_text()))
    assert distance.only_sgpipe == [] and distance.only_rlipv2 == [] and distance.shared == RELATIONS[dataset]
    assert distance.max_confidence_difference < TOLERANCE


@pytest.mark.slow
def test_the_fixture_regenerates_with_rlipv2s_code(dataset, tmp_path):
    """Needs the throwaway environment of tools/rlipv2_reference/README.md (RLIPV2_PYTHON, RLIPV2_SRC): RLIPv2's
    own flow run again writes the committed file byte for byte."""
    python, src = os.environ.get("RLIPV2_PYTHON"), os.environ.get("RLIPV2_SRC")
    if not (python and src):
        pytest.skip("RLIPV2_PYTHON / RLIPV2_SRC not set")
    script = Path(__file__).parents[2] / "tools" / "rlipv2_reference" / "make_flow_reference.py"
    out = tmp_path / f"{dataset}.json"
    subprocess.run([python, str(script), "--dataset", dataset, "--rlipv2-src", src, "--work", str(tmp_path / "work"),
                    "--fixture", str(out)], check=True, cwd=src, env={**os.environ, "PYTHONPATH": ""},
                   stdout=subprocess.DEVNULL, timeout=1800)
    assert out.read_bytes() == (FIXTURES / f"{dataset}.json").read_bytes()
