"""`sgpipe run` from the command line, the output folder read back: a kill during start-up, shards that
fail every attempt counted by the error-rate stop, and `--force` on a changed config."""

import json
import os
import signal
import tarfile

import pyarrow.parquet as pq
import pytest

from sgpipe.output.failed_shards import failed_shards_path
from tests.helpers.cli_runs import invoke, start_run, wait_for, write_recipe
from tests.helpers.coco_fixture import make_coco, make_coco_with_bad_images
from tests.helpers.outputs import complete_shards, shard_bytes
from tests.helpers.runs import POISON_IMAGE_ID, tiny_run_config

pytestmark = pytest.mark.usefixtures("local_ray")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_coco_with_bad_images(tmp_path_factory.mktemp("coco"))


def _recipe(paths, out, path, **overrides):
    config = tiny_run_config(paths, out, run__workers=1, output__samples_per_shard=1, **overrides)
    return write_recipe(config, path)


def _run(recipe, *options, factory=None):
    result = invoke(["run", recipe, "--no-progress", *options], factory=factory)
    return result.exit_code, result.output


def test_a_kill_during_start_up_resumes_to_the_same_bytes(dataset, tmp_path):
    """SIGKILL of the driver and its workers once the run holds its folder (lock, plan, run.json)
    and before any shard is done; the same command then gives the bytes of an uninterrupted run."""
    reference = tmp_path / "reference"
    assert _run(_recipe(dataset, reference, tmp_path / "reference.yaml"))[0] == 0
    out = tmp_path / "out"
    recipe = _recipe(dataset, out, tmp_path / "recipe.yaml")
    process = start_run(recipe, factory="stages_with_a_pause")
    wait_for(lambda: (out / "run.json").exists(), process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert json.loads((out / "run.json").read_text())["ended"] is None, "killed while starting"
    assert complete_shards(out) == 0, "killed before any shard was done"

    code, output = _run(recipe)
    assert code == 0, output
    assert shard_bytes(out) == shard_bytes(reference)
    keys = [r["key"] for r in pq.read_table(sorted(out.glob("*.parquet"))).to_pylist()]
    assert len(keys) == len(set(keys)) == 5


def test_the_images_of_a_shard_that_fails_every_attempt_count_toward_the_error_rate(tmp_path):
    """Four good images, one a shard; image 20 kills every worker given it, so shard 00001 fails its
    attempts (one here: run.shard_attempts=1). Its image counts as failed: 1 of at most 4 (25%) is over
    run.max_error_rate 20%, and the run stops on the error rate rather than ending with a failed shard."""
    paths = make_coco(tmp_path / "coco", n_images=4)
    out = tmp_path / "out"
    # on Ray: the local executor would run the poisoned shard in the driver, which it kills
    limits = {"run__max_error_rate": 0.2, "run__min_samples_for_error_rate": 1, "run__shard_attempts": 1,
              "run__executor": "ray"}
    recipe = _recipe(paths, out, tmp_path / "recipe.yaml", **limits)
    # in a process of its own: the poison kills whichever process runs the shard
    process = start_run(recipe, factory="stages_with_a_poison", capture=True)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr
    (paragraph,) = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert "Stopped: 1 of " in paragraph and "> run.max_error_rate 20%" in paragraph
    assert "00001 after 1 attempt (" in paragraph and "--redo-failed" in paragraph
    listing = json.loads(failed_shards_path(out).read_text())
    assert [(f["shard"], f["images"], f["count"]) for f in listing["failed"]] == [("00001", 1, 1)]
    assert not (out / "00001.tar").exists() and POISON_IMAGE_ID == 20

    code, output = _run(recipe)  # the poison gone: the same command writes every shard
    assert code == 0, output
    assert complete_shards(out) == 4 and not failed_shards_path(out).exists()


def _jpg_members(out):
    def count(path):
        with tarfile.open(path) as tar:
            return sum(name.endswith(".jpg") for name in tar.getnames())

    return {tar.name: count(tar) for tar in sorted(out.glob("*.tar"))}


def test_force_resumes_a_changed_config_and_keeps_the_complete_shards(dataset, tmp_path):
    out = tmp_path / "out"
    recipe = _recipe(dataset, out, tmp_path / "recipe.yaml")
    assert _run(recipe, "--shards", "0:2")[0] == 0  # shards 0 and 1 under the first config
    kept = {name: (out / name).stat().st_mtime_ns for name in ("00000.tar", "00001.tar", "00001.parquet")}
    first_hash = json.loads((out / "run.json").read_text())["config_hash"]

    changed = ["--set", "output.images=false"]  # a content key: label-only shards from now on
    code, output = _run(recipe, *changed)
    assert code == 2 and "--force" in output and complete_shards(out) == 2, output
    code, output = _run(recipe, *changed, "--force")
    assert code == 0, output

    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept  # kept as they are
    # shard 2 (image 30) and 3 (image 40) hold failures only
    jpgs = {"00000.tar": 1, "00001.tar": 1, "00002.tar": 0, "00003.tar": 0, "00004.tar": 0}
    assert _jpg_members(out) == jpgs
    run = json.loads((out / "run.json").read_text())
    assert run["config_hash"] != first_hash and run["config"]["output"]["images"] is False
    assert run["resumed"] == 1 and run["totals"]["shards"] == 5
    assert _run(recipe, *changed)[0] == 0  # the folder now belongs to the new config: no --force needed
