"""Byte-identical resume with every model on, through the command line: a sampling captioner (tiny BLIP,
top-p, seeded per image key) and the verifier (tiny, random weights). A SIGKILL mid-run, and
`--redo-failed` of an image that was not readable yet and of a stage failure, each give the bytes of a
run that never met them."""

import json
import shutil

import pyarrow.parquet as pq
import pytest

from sgpipe.shards import iter_shard_samples
from tests.helpers.cli_runs import invoke, kill_after_shards, start_run, write_recipe
from tests.helpers.coco_fixture import make_coco
from tests.helpers.outputs import complete_shards, shard_bytes
from tests.helpers.runs import FLAKY_IMAGE_ID, flaky_flag, tiny_run_config, with_tiny_models

pytestmark = pytest.mark.usefixtures("local_ray")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_coco(tmp_path_factory.mktemp("coco"), n_images=5)  # ids 10-50, one a shard


@pytest.fixture(scope="module")
def recipe(dataset, tiny_blip, tiny_verifier, tmp_path_factory):
    """Writes the recipe for an output folder, with overrides."""
    folder = tmp_path_factory.mktemp("recipes")

    def write(out, **overrides):
        models = with_tiny_models(tiny_blip, tiny_verifier)
        one_a_shard = {"run__workers": 1, "output__samples_per_shard": 1}
        config = tiny_run_config(dataset, out, **one_a_shard, **models, **overrides)
        return write_recipe(config, folder / f"{out.name}.yaml")

    return write


def _run(recipe, *options, factory=None):
    result = invoke(["run", recipe, "--no-progress", *options], factory=factory)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def reference(recipe, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "out"
    _run(recipe(out))
    return out


def test_the_reference_samples_captions_and_verifies_every_relation(reference):
    records = [sample.record for sample in iter_shard_samples(str(reference))]
    assert len(records) == 5
    model_captions = [[c["text"] for c in r["captions"] if c["source"] == "model"] for r in records]
    assert all(len(texts) == 2 for texts in model_captions)
    assert len({tuple(texts) for texts in model_captions}) > 1, "sampled per image key, not one caption"
    decoding = next(c for c in records[0]["captions"] if c["source"] == "model")["decoding"]
    assert decoding["top_p"] == 0.9 and decoding.get("num_beams", 1) == 1
    relations = [rel for r in records for rel in r["relations"]]
    assert relations and all(rel["confidence"] is not None for rel in relations)


def test_sigkill_mid_run_then_resume_gives_identical_shards(recipe, reference, tmp_path):
    out = tmp_path / "out"
    process = start_run(recipe(out), factory="stages_with_a_pause")
    kill_after_shards(process, lambda: complete_shards(out), 2, total=5, timeout=300)
    _run(recipe(out))
    assert shard_bytes(out) == shard_bytes(reference)
    keys = [r["key"] for r in pq.read_table(sorted(out.glob("*.parquet"))).to_pylist()]
    assert len(keys) == len(set(keys)) == 5


def test_redo_failed_decode_and_stage_failure_give_the_bytes_of_a_clean_run(
    dataset, recipe, reference, tmp_path
):
    """Image 20 was half copied on the first run's mount (failed_decode); image 50 met a stage failure
    (failed_caption). With the mount fixed, `--redo-failed` redoes those two shards only."""
    flaky = tmp_path / "mount" / "images"
    shutil.copytree(dataset["images"], flaky)
    whole = (flaky / "000000000020.jpg").read_bytes()
    (flaky / "000000000020.jpg").write_bytes(whole[: len(whole) // 2])
    flaky_flag(flaky).touch()
    out = tmp_path / "out"
    _run(recipe(out, source__images=str(flaky)), factory="stages_with_a_flaky_stage")
    statuses = {r["image_id"]: r["status"] for r in pq.read_table(sorted(out.glob("*.parquet"))).to_pylist()}
    assert statuses == {10: "ok", 20: "failed_decode", 30: "ok", 40: "ok", FLAKY_IMAGE_ID: "failed_caption"}
    untouched = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar") if p.stem not in ("00001", "00004")}

    _run(recipe(out), "--redo-failed", factory="stages_with_a_flaky_stage")
    assert shard_bytes(out) == shard_bytes(reference)
    assert {name: (out / name).stat().st_mtime_ns for name in untouched} == untouched
    assert [r["shards"] for r in json.loads((out / "run.json").read_text())["redone"]] == [[1, 4]]
