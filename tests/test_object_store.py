"""Runs against a real S3 API (moto's server on 127.0.0.1): output, source and the lease on `s3://` URLs."""

import io
import json
import shutil
import time

import pyarrow.parquet as pq
import pytest

from sgpipe.errors import OutputLockedError
from sgpipe.output.lease import Lease
from sgpipe.run import run_pipeline
from sgpipe.storage import RemotePath
from tests.helpers.cli_runs import invoke, kill_after_shards, start_run, write_recipe
from tests.helpers.coco_fixture import make_coco_with_bad_images
from tests.helpers.outputs import shard_bytes
from tests.helpers.ray_local import local_ray as start_local_ray
from tests.helpers.runs import FLAKY_IMAGE_ID, QUIET, flaky_flag, tiny_run_config
from tests.helpers.s3 import S3Calls, object_bytes, s3, s3_server, upload_folder
from tests.helpers.schemas import validate

ONE_PER_SHARD = {"run__workers": 1, "output__samples_per_shard": 1}


@pytest.fixture(scope="module")
def s3opts():
    with s3_server() as options:
        yield options


@pytest.fixture(scope="module", autouse=True)
def local_ray(s3opts):
    """Started after the S3 credentials are in the environment, so the workers inherit them (the
    tests run in this process unless they ask for Ray)."""
    with start_local_ray() as ray:
        yield ray


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_coco_with_bad_images(tmp_path_factory.mktemp("coco"))


@pytest.fixture(scope="module")
def local_run(dataset, tmp_path_factory):
    """The same recipe written to a local folder: what every remote variant must equal."""
    out = tmp_path_factory.mktemp("local")
    run_pipeline(tiny_run_config(dataset, out, **ONE_PER_SHARD), QUIET)
    return out


def s3_config(paths, out, options, **overrides):
    return tiny_run_config(paths, out, output__storage_options=json.dumps(options), **overrides)


def test_a_run_to_s3_writes_the_bytes_of_a_local_run_and_lists_only_the_output(dataset, s3opts, local_run):
    local = local_run
    calls = S3Calls(s3opts)
    # on Ray: its workers reach the store with the credentials and options of the driver
    on_ray = {**ONE_PER_SHARD, "run__executor": "ray"}
    summary = run_pipeline(s3_config(dataset, "s3://bucket/run", s3opts, **on_ray), QUIET)
    listed = list(calls.listed_prefixes)
    assert "wrote 5 shards to s3://bucket/run" in summary
    assert object_bytes(s3opts, "s3://bucket/run") == shard_bytes(local)
    fs = s3(s3opts)
    names = {p.rsplit("/", 1)[-1] for p in fs.ls("bucket/run", detail=False, refresh=True)}
    assert {"run.json", "stats.json", "shardindex.json", "00004_stats.json"} <= names
    assert not fs.exists("bucket/run/.sgpipe/lease.json"), "the lease is released at the end"
    assert fs.exists("bucket/run/.sgpipe/plan/plan.json") and fs.exists("bucket/run/.sgpipe/plan/00004.jsonl")
    for name, schema in (("run.json", "run"), ("stats.json", "stats"), ("shardindex.json", "shardindex")):
        validate(json.loads(fs.cat_file(f"bucket/run/{name}")), schema)
    assert json.loads(fs.cat_file("bucket/run/shardindex.json")) == json.loads(
        (local / "shardindex.json").read_text()
    )
    # the driver lists the output folder itself (start, schedule, finalise), never recursively;
    # other listings are single-key probes of absent objects (MaxKeys 1)
    assert listed.count("run/") == 3
    assert all(p == "run/" or p.endswith(".json/") for p in listed), listed

    calls.calls.clear()
    run_pipeline(s3_config(dataset, "s3://bucket/run", s3opts, **ONE_PER_SHARD), QUIET)  # rewrites no shard
    assert json.loads(fs.cat_file("bucket/run/run.json"))["resumed"] == 1
    assert calls.count("PutObject") <= 5  # lease (take, release is a delete), run.json x2, stats, index


def _markers(fs, prefix):
    fs.invalidate_cache()
    try:
        return [p for p in fs.ls(prefix, detail=False, refresh=True) if p.endswith("_stats.json")]
    except FileNotFoundError:
        return []


def test_sigkill_then_resume_on_s3_gives_identical_shards_once_the_lease_lapses(
    dataset, s3opts, local_run, tmp_path
):
    one_per_shard = {**ONE_PER_SHARD, "output__lease_seconds": 6}
    fs = s3(s3opts)
    config = s3_config(dataset, "s3://bucket/killed", s3opts, **one_per_shard)
    process = start_run(write_recipe(config, tmp_path / "recipe.yaml"), factory="stages_with_a_pause")
    kill_after_shards(process, lambda: len(_markers(fs, "bucket/killed")), 2, total=5, poll=0.05)

    with pytest.raises(OutputLockedError, match="lease runs until"):
        run_pipeline(config, QUIET)  # the killed run's lease is still live
    lease = json.loads(fs.cat_file("bucket/killed/.sgpipe/lease.json"))
    time.sleep(max(0.0, lease["expires"] - time.time()) + 0.2)
    run_pipeline(config, QUIET)  # lapsed: taken over
    # the bytes of an uninterrupted run (a local one: the first test shows S3 and local bytes agree)
    assert object_bytes(s3opts, "s3://bucket/killed") == shard_bytes(local_run)
    keys = [
        r["key"]
        for name, data in object_bytes(s3opts, "s3://bucket/killed", (".parquet",)).items()
        for r in pq.read_table(io.BytesIO(data)).to_pylist()
    ]
    assert len(keys) == len(set(keys)) == 5


def test_a_second_live_run_is_refused(dataset, s3opts):
    out = RemotePath("s3://bucket/held", s3opts)
    with Lease(out, 30):
        with pytest.raises(OutputLockedError, match="in use by a running sgpipe"):
            run_pipeline(s3_config(dataset, "s3://bucket/held", s3opts), QUIET)
    assert not s3(s3opts).exists("bucket/held/00000.tar"), "the refused run wrote nothing"


def test_images_instances_and_captions_read_from_a_bucket(dataset, s3opts, local_run, tmp_path):
    local = local_run
    upload_folder(s3opts, dataset["root"], "s3://bucket/coco")
    remote = {
        "instances": "s3://bucket/coco/instances.json",
        "images": "s3://bucket/coco/images",
        "captions": "s3://bucket/coco/captions.json",
    }
    out = tmp_path / "out"
    run_pipeline(
        tiny_run_config(remote, out, source__storage_options=json.dumps(s3opts), **ONE_PER_SHARD), QUIET
    )
    rows = pq.read_table(sorted(out.glob("*.parquet"))).to_pylist()
    expected = pq.read_table(sorted(local.glob("*.parquet"))).to_pylist()
    assert [(r["key"], r["status"]) for r in rows] == [(r["key"], r["status"]) for r in expected]
    missing = next(r for r in rows if r["image_id"] == 40)["error_message"]
    assert missing.startswith("no object '000000000040.jpg' under 's3://bucket/coco/images'")
    stats = json.loads((out / "stats.json").read_text())
    assert stats["counters"]["resolved_direct"] == 4 and stats["status"]["ok"] == 3
    plan = json.loads((out / ".sgpipe" / "plan" / "plan.json").read_text())
    assert plan["fingerprint"]["instances"]["path"] == remote["instances"]
    assert plan["fingerprint"]["instances"]["version"]  # the ETag: a changed object is re-planned


def test_resume_on_s3_from_every_state_a_kill_can_leave(dataset, s3opts, local_run):
    """Objects under final names without a marker, a torn index, no stats.json: redone to the same bytes."""
    upload_folder(s3opts, local_run, "s3://bucket/states")
    fs = s3(s3opts)
    fs.rm_file(
        "bucket/states/00000_stats.json"
    )  # shard 0: tar and parquet uploaded, killed before the marker
    fs.rm_file("bucket/states/00001.parquet")  # shard 1: killed after the tar
    fs.rm_file("bucket/states/00001_stats.json")
    fs.pipe_file("bucket/states/00001.tar", b"a tar from another attempt")
    fs.rm_file("bucket/states/stats.json")  # finalisation never ran
    fs.pipe_file("bucket/states/shardindex.json", b"{")
    calls = S3Calls(s3opts)
    run_pipeline(s3_config(dataset, "s3://bucket/states", s3opts, **ONE_PER_SHARD), QUIET)
    assert object_bytes(s3opts, "s3://bucket/states") == shard_bytes(local_run)
    assert json.loads(fs.cat_file("bucket/states/shardindex.json")) == json.loads(
        (local_run / "shardindex.json").read_text()
    )
    assert fs.exists("bucket/states/stats.json")
    # the uploaded plan was reused (same inputs): nothing under .sgpipe/plan was written again;
    # lease, run.json x2, stats.json, shardindex.json (+ a renewal), and the two shards redone in
    # this process (the local executor), three objects each
    assert calls.count("PutObject") <= 6 + 2 * 3


def test_redo_failed_on_s3_gives_the_bytes_of_a_clean_run(dataset, s3opts, local_run, tmp_path):
    """Output in a bucket; on the first run's mount image 20 was half copied (failed_decode) and image 50
    met a stage failure (failed_caption). With the mount fixed, `--redo-failed` reopens the shards holding
    retryable failures in the bucket and writes an undisturbed run's bytes (30 and 40 fail again: the
    fixture's own undecodable and missing images)."""
    flaky = tmp_path / "mount" / "images"
    shutil.copytree(dataset["images"], flaky)
    whole = (flaky / "000000000020.jpg").read_bytes()
    (flaky / "000000000020.jpg").write_bytes(whole[: len(whole) // 2])
    flaky_flag(flaky).touch()
    config = s3_config(dataset, "s3://bucket/redo", s3opts, **ONE_PER_SHARD)
    recipe = write_recipe(config, tmp_path / "recipe.yaml")
    options = ["run", recipe, "--no-progress", "--set", "run.max_error_rate=1.0"]
    first = invoke([*options, "--set", f"source.images={flaky}"], factory="stages_with_a_flaky_stage")
    assert first.exit_code == 0, first.output
    rows = [
        (r["image_id"], r["status"])
        for data in object_bytes(s3opts, "s3://bucket/redo", (".parquet",)).values()
        for r in pq.read_table(io.BytesIO(data)).to_pylist()
    ]
    assert rows == [(10, "ok"), (20, "failed_decode"), (30, "failed_decode"), (40, "failed_missing"),
                    (FLAKY_IMAGE_ID, "failed_caption")]

    redo = invoke([*options, "--redo-failed"], factory="stages_with_a_flaky_stage")
    assert redo.exit_code == 0, redo.output
    assert object_bytes(s3opts, "s3://bucket/redo") == shard_bytes(local_run)
    run = json.loads(s3(s3opts).cat_file("bucket/redo/run.json"))
    assert [r["shards"] for r in run["redone"]] == [[1, 2, 3, 4]]


def test_reverify_reads_and_writes_buckets_with_the_bytes_of_a_local_reverify(
    dataset, s3opts, local_run, tiny_verifier, tmp_path
):
    from sgpipe.run.reverify import reverify

    upload_folder(s3opts, local_run, "s3://bucket/to-rescore")
    options = json.dumps(s3opts)
    rescore = ["verify.store_threshold=0.0"]
    local = tmp_path / "rescored"
    reverify(local_run, tiny_verifier, local, rescore)
    summary = reverify(
        "s3://bucket/to-rescore",
        tiny_verifier,
        "s3://bucket/rescored",
        [*rescore, f"source.storage_options={options}", f"output.storage_options={options}"],
    )
    assert "re-scored 5 shards (0 already done)" in summary and "wrote s3://bucket/rescored" in summary
    assert object_bytes(s3opts, "s3://bucket/rescored") == shard_bytes(local)
    run = json.loads(s3(s3opts).cat_file("bucket/rescored/run.json"))
    assert run["reverify"]["source"] == "s3://bucket/to-rescore"
    assert run["models"]["verifier"] == str(tiny_verifier)
    assert not s3(s3opts).exists("bucket/rescored/.sgpipe/lease.json"), "its lease is released"
