"""A run with `source.exclude`: excluded images get their own status, are no failures, and leave the
other images' shard content as it was."""

from __future__ import annotations

import json
import tarfile

import pyarrow.parquet as pq
import pytest

from sgpipe.errors import PreflightError
from sgpipe.run import run_pipeline
from sgpipe.run.identity import config_hash
from sgpipe.run.progress import failure_rate
from tests.helpers.coco_fixture import make_coco
from tests.helpers.runs import QUIET, tiny_run_config
from tests.helpers.schemas import validate

EXCLUDED_IDS = (20, 40)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("exclude")
    paths = make_coco(root, n_images=5)
    exclude = root / "leak.json"
    exclude.write_text(
        json.dumps(
            [
                {"image_id": 20, "file_name": "x", "how": "phash", "against": "/eval/a.jpg", "distance": 12},
                {
                    "image_id": 40,
                    "file_name": "y",
                    "how": "id",
                    "against": "/eval/val.json",
                    "distance": None,
                },
            ]
        )
    )
    plain = run_pipeline(tiny_run_config(paths, root / "plain"), QUIET)
    # no failure is tolerated: excluded images must not count as failures
    config = tiny_run_config(
        paths,
        root / "excluded",
        source__exclude=str(exclude),
        run__max_error_rate=0.0,
        run__min_samples_for_error_rate=1,
    )
    excluded = run_pipeline(config, QUIET)
    return root / "plain", root / "excluded", plain, excluded


def _members(out):
    members = {}
    for path in sorted(out.glob("*.tar")):
        with tarfile.open(path) as tar:
            for info in tar.getmembers():
                members[info.name] = tar.extractfile(info).read()
    return members


def test_excluded_images_get_their_status_and_reason(runs):
    _, out, _, summary = runs
    rows = pq.read_table(sorted(out.glob("*.parquet"))).to_pylist()
    statuses = {r["image_id"]: r["status"] for r in rows}
    assert statuses == {10: "ok", 20: "excluded", 30: "ok", 40: "excluded", 50: "ok"}
    reasons = {r["image_id"]: r["error_message"] for r in rows if r["status"] == "excluded"}
    assert reasons == {
        20: "evaluation image: perceptual hash 12 bits from /eval/a.jpg",
        40: "evaluation image: same image id in /eval/val.json",
    }
    assert "excluded=2" in summary


def test_excluded_images_are_not_failures_in_the_stats(runs):
    _, out, _, _ = runs
    stats = json.loads((out / "stats.json").read_text())
    validate(stats, "stats")
    for path in out.glob("*_stats.json"):
        validate(json.loads(path.read_text()), "shard_stats")
    assert stats["status"] == {"excluded": 2, "ok": 3}
    assert stats["totals"]["failed_to_process"] == 0 and stats["totals"]["excluded"] == 2
    assert stats["totals"]["successes"] == 3


def test_other_images_keep_their_bytes_and_excluded_ones_have_no_members(runs):
    plain, out, _, _ = runs
    before, after = _members(plain), _members(out)
    assert not any(name.startswith(("t-000000000020", "t-000000000040")) for name in after)
    kept = {
        name: data
        for name, data in before.items()
        if not name.startswith(("t-000000000020", "t-000000000040"))
    }
    assert set(after) == set(kept)
    for name, data in kept.items():
        if name.endswith(".jpg"):
            assert after[name] == data
        else:  # the records differ only in the config hash of their provenance
            old, new = json.loads(data), json.loads(after[name])
            old.pop("provenance"), new.pop("provenance")
            assert old == new


def test_the_error_rate_ignores_excluded_images():
    shard = {"count": 10, "failed_to_process": 2, "excluded": 6}
    assert failure_rate([shard]) == (4, 2)
    assert failure_rate([{"count": 10, "failed_to_process": 2}]) == (10, 2)  # shards written before
    # a reverify: the failures it carries over were judged by the run it re-scores
    assert failure_rate([{"shard": "00003", "count": 10, "failed_to_process": 4}], {"00003": 3}) == (7, 1)


def test_the_exclude_file_is_checked_before_any_work(tmp_path):
    paths = make_coco(tmp_path, n_images=1)
    bad = tmp_path / "bad.json"
    bad.write_text('{"image_id": 1}')
    with pytest.raises(PreflightError) as caught:
        run_pipeline(tiny_run_config(paths, tmp_path / "o", source__exclude=str(bad)), QUIET)
    assert "expected a JSON list" in str(caught.value)
    assert not list((tmp_path / "o").glob("*.tar")) and not (tmp_path / "o" / "run.json").exists()
    with pytest.raises(PreflightError, match="no such file"):
        absent = str(tmp_path / "absent.json")
        run_pipeline(tiny_run_config(paths, tmp_path / "o", source__exclude=absent), QUIET)


def test_the_config_hash_follows_the_exclude_file_content_not_its_name(tmp_path):
    paths = make_coco(tmp_path, n_images=1)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text('[{"image_id": 10}]')
    second.write_text('[{"image_id": 10}]')
    hashes = [
        config_hash(tiny_run_config(paths, tmp_path / "o", source__exclude=str(p))) for p in (first, second)
    ]
    assert hashes[0] == hashes[1]
    second.write_text('[{"image_id": 10}, {"image_id": 20}]')
    changed = config_hash(tiny_run_config(paths, tmp_path / "o", source__exclude=str(second)))
    assert changed != hashes[0]


def test_the_schemas_list_every_status_of_the_code():
    from sgpipe import errors
    from tests.helpers.schemas import SCHEMAS

    for name in ("shard_stats", "stats"):
        schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        assert schema["properties"]["status"]["propertyNames"]["enum"] == list(errors.STATUSES)
