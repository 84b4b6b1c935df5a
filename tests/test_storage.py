"""`sgpipe.storage` and `sgpipe.output.lease`: URL checks, the lease's races, image reads from a bucket
(moto's S3 server on 127.0.0.1 for the S3 parts; fsspec's memory filesystem for a store without
conditional writes)."""

import importlib.util
import json
import time
from pathlib import Path

import pytest
import yaml

from sgpipe import errors
from sgpipe.config import build_config
from sgpipe.errors import ConfigError, OutputLockedError
from sgpipe.output import lease
from sgpipe.output.lease import Lease
from sgpipe.records import ImageEntry
from sgpipe.run.identity import config_hash
from sgpipe.run.preflight import checked_config, preflight_problems
from sgpipe.run.sources import entry_to_sample
from sgpipe.source.decode import DecodeStage
from sgpipe.storage import RemotePath, location, redact, url_problem
from tests.helpers.images import write_image
from tests.helpers.s3 import S3Calls, s3, s3_server
from tests.helpers.stages import run_stage


@pytest.fixture(scope="module")
def s3opts():
    with s3_server() as options:
        yield options


def test_plain_paths_and_file_urls_stay_local_and_other_urls_go_through_fsspec(tmp_path):
    assert location(str(tmp_path / "out")) == tmp_path / "out"
    assert location(f"file://{tmp_path}/out") == tmp_path / "out"
    assert location("relative/out") == Path("relative/out")
    remote = location("s3://bucket/out/", {"endpoint_url": "http://x"})
    assert isinstance(remote, RemotePath) and str(remote / "00000.tar") == "s3://bucket/out/00000.tar"
    assert (remote / "a").options == {"endpoint_url": "http://x"}


def test_each_bad_url_gets_a_message_naming_the_fix():
    assert url_problem("s3://bucket/out", "output.dir") is None
    assert url_problem("/data/out", "output.dir") is None and url_problem("file:///data", "x") is None
    assert "unknown protocol 'nosuch://'" in url_problem("nosuch://bucket/out", "output.dir")
    assert "looks like a URL missing a slash; write 's3://bucket/out'" in url_problem("s3:/bucket/out", "k")
    if importlib.util.find_spec("gcsfs") is None:
        assert "needs gcsfs: `pip install gcsfs`" in url_problem("gs://bucket/images", "source.images")


def _recipe(tmp_path, raw):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    return recipe


def test_bad_urls_are_config_errors_reported_together(tmp_path):
    raw = {
        "source": {"instances": "nosuch://b/i.json", "images": "s3:/bucket/images", "captions": "c.json"},
        "output": {"dir": "zzz://bucket/out", "lease_seconds": 1},
    }
    with pytest.raises(ConfigError) as caught:  # the command line's check: the config's and the world's
        checked_config(_recipe(tmp_path, raw))
    text = str(caught.value)
    assert "source.instances: unknown protocol 'nosuch://'" in text
    assert "source.images: 's3:/bucket/images' looks like a URL missing a slash" in text
    assert "output.dir: unknown protocol 'zzz://'" in text
    assert "output.lease_seconds: 1.0 must be >= 3" in text


def test_where_the_data_lives_does_not_change_the_config_hash():
    raw = {"source": {"instances": "i.json", "images": "im", "captions": "c.json"}}
    base = config_hash(build_config(raw))
    moved = build_config(
        raw,
        [
            "output.dir=s3://b/out",
            'output.storage_options={"endpoint_url": "http://x"}',
            "output.lease_seconds=30",
            'source.storage_options={"anon": true}',
        ],
    )
    assert moved.output.storage_options == {"endpoint_url": "http://x"} and moved.output.lease_seconds == 30
    assert config_hash(moved) == base


def test_secrets_in_storage_options_are_not_recorded():
    shown = redact(
        {
            "endpoint_url": "http://x",
            "key": "AKIA",
            "token": "t",
            "client_kwargs": {"aws_secret_access_key": "s"},
        }
    )
    assert shown == {
        "endpoint_url": "http://x",
        "key": "***",
        "token": "***",
        "client_kwargs": {"aws_secret_access_key": "***"},
    }


def test_a_missing_remote_instances_file_is_a_preflight_problem(s3opts):
    raw = {
        "source": {"instances": "s3://bucket/nope.json", "images": "s3://bucket/images", "captions": ""},
        "caption": {"enabled": True},
    }
    config = build_config(raw, [f"source.storage_options={json.dumps(s3opts)}"])
    assert "source.instances: no such file 's3://bucket/nope.json'" in preflight_problems(config)


def test_an_exclude_list_in_a_bucket_is_checked_read_and_hashed_by_content(s3opts, tmp_path):
    from sgpipe.leakage.exclude import load_exclusions

    fs = s3(s3opts)
    fs.pipe_file(
        "bucket/leak.json", json.dumps([{"image_id": 7, "how": "bytes", "against": "v.jpg"}]).encode()
    )
    fs.pipe_file("bucket/broken.json", b'{"image_id": 7}')
    local = tmp_path / "leak.json"
    local.write_bytes(fs.cat_file("bucket/leak.json"))
    for name in ("instances.json", "captions.json"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "images").mkdir()
    raw = {
        "source": {
            "instances": str(tmp_path / "instances.json"),
            "images": str(tmp_path / "images"),
            "captions": str(tmp_path / "captions.json"),
        }
    }
    options = f"source.storage_options={json.dumps(s3opts)}"
    remote = build_config(raw, ["source.exclude=s3://bucket/leak.json", options])
    assert load_exclusions(remote.source.exclude, s3opts) == {7: "evaluation image: same bytes as v.jpg"}
    assert config_hash(remote) == config_hash(build_config(raw, [f"source.exclude={local}"]))
    problems = preflight_problems(build_config(raw, ["source.exclude=s3://bucket/none.json", options]))
    missing = "source.exclude: no such file 's3://bucket/none.json' (write one with `sgpipe leakage`)"
    assert missing in problems
    broken = preflight_problems(build_config(raw, ["source.exclude=s3://bucket/broken.json", options]))
    assert any("expected a JSON list" in problem for problem in broken)


# --- the lease --------------------------------------------------------------------------------


def test_two_runs_creating_the_lease_at_once_one_is_refused(s3opts, monkeypatch):
    out = RemotePath("s3://bucket/race-create", s3opts)
    first, second = Lease(out, 30), Lease(out, 30)
    monkeypatch.setattr(second, "read", lambda: (None, None))  # it looked before the first one wrote
    first.acquire()
    monkeypatch.undo()
    with pytest.raises(OutputLockedError, match=first.owner.split(" id=")[1]):
        _acquire_having_seen(second, None, None)
    assert first.read()[0]["owner"] == first.owner


def _acquire_having_seen(contender, seen, etag):
    """`acquire` as if its read had returned (seen, etag), before the other run's write."""
    real_read = contender.read
    calls = iter([(seen, etag)])
    contender.read = lambda: next(calls, None) or real_read()
    contender.acquire()


def test_two_runs_taking_over_a_lapsed_lease_at_once_one_is_refused(s3opts):
    out = RemotePath("s3://bucket/race-lapsed", s3opts)
    Lease(out, 3, clock=lambda: time.time() - 100).acquire()  # a killed run's, long lapsed
    lapsed, etag = Lease(out, 30).read()
    winner, loser = Lease(out, 30), Lease(out, 30)
    winner.acquire()
    with pytest.raises(OutputLockedError, match="in use"):
        _acquire_having_seen(loser, lapsed, etag)  # If-Match on the lapsed ETag: 412
    assert winner.read()[0]["owner"] == winner.owner


def test_a_live_lease_is_renewed_and_a_lapsed_one_taken_over(s3opts):
    out = RemotePath("s3://bucket/renew", s3opts)
    holder = Lease(out, 30)
    holder.acquire()
    before = holder.read()[0]["expires"]
    time.sleep(0.05)
    holder.renew()
    assert holder.lost is None and holder.read()[0]["expires"] > before
    with pytest.raises(OutputLockedError):
        Lease(out, 30).acquire()
    dead = RemotePath("s3://bucket/dead", s3opts)
    Lease(dead, 3, clock=lambda: time.time() - 10).acquire()  # never renewed: lapsed
    with Lease(dead, 30) as taker:
        assert taker.read()[0]["owner"] == taker.owner
    assert not s3(s3opts).exists("bucket/dead/.sgpipe/lease.json"), "released at the end"


def test_a_run_whose_lease_was_taken_over_notices_and_fails_at_the_end(s3opts):
    out = RemotePath("s3://bucket/stolen", s3opts)
    with pytest.raises(OutputLockedError, match="was lost during the run: taken over by intruder"):
        with Lease(out, 30) as holder:
            holder.path.fs.pipe_file(
                holder.path.path, json.dumps({"owner": "intruder", "expires": 0}).encode()
            )
            holder.renew()
    assert Lease(out, 30).read()[0]["owner"] == "intruder", "a lost lease is not deleted"


def test_an_output_in_a_missing_bucket_is_a_clear_error(s3opts):
    from sgpipe.errors import SgpipeError

    with pytest.raises(SgpipeError, match="cannot write the output lease s3://no-such-bucket/out/.sgpipe"):
        Lease(RemotePath("s3://no-such-bucket/out", s3opts), 30).acquire()


def test_a_store_without_conditional_writes_decides_by_reading_back(monkeypatch):
    monkeypatch.setattr(lease, "SETTLE_S", 0.01)
    out = RemotePath("memory://leases/out")
    first = Lease(out, 30)
    assert not first.conditional
    first.acquire()
    with pytest.raises(OutputLockedError):
        Lease(out, 30).acquire()
    # a racer that looked before the first write and wrote after it: read back by both, it holds
    racer = Lease(out, 30)
    _acquire_having_seen(racer, None, None)
    first.renew()
    assert first.lost == f"taken over by {racer.owner}"


# --- images from a bucket ---------------------------------------------------------------------


def test_images_are_fetched_by_name_without_listing_the_folder(s3opts, tmp_path):
    write_image(tmp_path / "a.jpg", 32, 24, seed=1)
    fs = s3(s3opts)
    fs.put_file(str(tmp_path / "a.jpg"), "bucket/images/000000000010.jpg")
    fs.put_file(str(tmp_path / "a.jpg"), "bucket/images/patch1/000000000020.jpg")
    fs.pipe_file("bucket/images/000000000030.jpg", b"")
    entries = [
        ImageEntry(10, "000000000010.jpg", 32, 24),  # found under its name
        ImageEntry(20, "v2/patch1/000000000020.jpg", 32, 24),  # Objects365 layout: its last two parts
        ImageEntry(30, "000000000030.jpg", 32, 24),  # an empty object
        ImageEntry(40, "000000000040.jpg", 32, 24),  # absent
        ImageEntry(50, "../secret.jpg", 32, 24),  # leaves the folder: never fetched
    ]
    samples = [entry_to_sample(e, "t") for e in entries]
    stage = DecodeStage(RemotePath("s3://bucket/images", s3opts), max_pixels=10**8, threads=2)
    calls = S3Calls(s3opts)
    run_stage(stage, samples)
    assert [s.status for s in samples] == [
        errors.OK,
        errors.OK,
        errors.FAILED_DECODE,
        errors.FAILED_MISSING,
        errors.FAILED_MISSING,
    ]
    assert samples[0].image_bytes == (tmp_path / "a.jpg").read_bytes()
    assert samples[1].counters == {"resolved_last_two": 1}
    assert "no object '000000000040.jpg' under 's3://bucket/images'" in samples[3].error_message
    assert "leaves the images folder" in samples[4].error_message
    # one GET per name tried (3 found, 2 absent), nothing else: no listing of the images folder
    assert dict(calls.calls) == {("GetObject", "bucket"): 5}


def test_a_remote_instances_file_is_stream_indexed_to_the_plan_of_a_local_one(s3opts, tmp_path):
    from sgpipe.config import SourceConfig
    from sgpipe.source.plan import build_plan, read_shard_entries
    from tests.helpers.coco_fixture import make_coco

    paths = make_coco(tmp_path / "coco", n_images=5)
    s3(s3opts).put_file(str(paths["instances"]), "bucket/plan/instances.json")
    local = build_plan(SourceConfig(instances=str(paths["instances"])), 2, tmp_path / "local")
    remote_source = SourceConfig(
        instances="s3://bucket/plan/instances.json", index="stream", storage_options=s3opts
    )
    remote = build_plan(remote_source, 2, tmp_path / "remote")  # three streaming passes over the object
    assert remote.method == "stream" and remote.shard_sizes == local.shard_sizes == [2, 2, 1]
    for index in range(3):
        assert read_shard_entries(tmp_path / "remote", index) == read_shard_entries(tmp_path / "local", index)


def test_a_shard_costs_a_get_per_image_and_three_puts(s3opts, tmp_path):
    """A worker on a remote source and output: its entries, its images, its three objects; no listing."""
    from tests.helpers.coco_fixture import make_coco
    from tests.helpers.runs import planned_processor, tiny_run_config
    from tests.helpers.s3 import upload_folder

    paths = make_coco(tmp_path / "coco", n_images=8)
    upload_folder(s3opts, paths["root"], "s3://bucket/cost")
    remote = {
        k: f"s3://bucket/cost/{v}"
        for k, v in (("instances", "instances.json"), ("images", "images"), ("captions", "captions.json"))
    }
    options = json.dumps(s3opts)
    config = tiny_run_config(
        remote,
        "s3://bucket/cost-out",
        source__storage_options=options,
        output__storage_options=options,
        output__samples_per_shard=4,
    )
    processor = planned_processor(config)
    calls = S3Calls(s3opts)
    stats = processor.process_shard(1)
    assert stats["status"] == {"ok": 4}
    assert dict(calls.calls) == {("GetObject", "bucket"): 1 + 4, ("PutObject", "bucket"): 3}
