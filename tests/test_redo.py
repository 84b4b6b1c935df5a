"""`--redo-failed`: retryable failures of complete shards are redone to a clean run's exact bytes."""

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from sgpipe.run.identity import config_hash
from sgpipe.cli import app
from sgpipe.errors import ErrorRateExceeded
from sgpipe.run.redo import RETRYABLE_STATUSES, reopen_shard, shards_to_redo
from sgpipe.run import RunOptions, run_pipeline
from sgpipe.output.writer import is_shard_complete
from tests.helpers.coco_fixture import make_coco
from tests.helpers.outputs import shard_bytes
from tests.helpers.runs import QUIET, tiny_run_config
from tests.helpers.schemas import validate

REDO = RunOptions(progress=False, redo_failed=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Six good images, three shards of two."""
    return make_coco(tmp_path_factory.mktemp("coco"), n_images=6)


@pytest.fixture(scope="module")
def clean(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    run_pipeline(tiny_run_config(dataset, out), QUIET)
    return out


def _stamps(out, names):
    return {name: (out / name).stat().st_mtime_ns for name in names}


def _flaky_copy(dataset, folder, missing):
    """The images folder as a flaky mount showed it: some files absent."""
    shutil.copytree(dataset["images"], folder)
    for name in missing:
        (folder / name).unlink()
    return folder


def test_redo_after_missing_images_come_back_gives_the_clean_runs_bytes(dataset, clean, tmp_path):
    out = tmp_path / "out"
    # shard 0 (10, 20) complete and ok; shard 1 loses 30, shard 2 loses 50 and 60
    missing = ["000000000030.jpg", "000000000050.jpg", "000000000060.jpg"]
    flaky = _flaky_copy(dataset, tmp_path / "flaky", missing)
    run_pipeline(tiny_run_config(dataset, out, source__images=str(flaky), run__max_error_rate=0.6), QUIET)
    assert json.loads((out / "stats.json").read_text())["status"] == {"failed_missing": 3, "ok": 3}
    untouched = _stamps(out, ["00000.tar", "00000.parquet", "00000_stats.json"])

    # the mount is fixed elsewhere: a location change, so the same output folder resumes
    fixed = tiny_run_config(dataset, out, run__max_error_rate=0.6)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(fixed.to_dict()))
    planned = CliRunner().invoke(app, ["run", str(recipe), "--redo-failed", "--dry-run"])
    assert planned.exit_code == 0, planned.output
    assert "to run: 2 shards (4 images)" in planned.output
    run_pipeline(fixed, QUIET)  # a plain rerun keeps complete shards, failures included
    assert json.loads((out / "stats.json").read_text())["status"]["failed_missing"] == 3
    run_pipeline(fixed, REDO)

    assert shard_bytes(out) == shard_bytes(clean)
    assert _stamps(out, untouched) == untouched  # an all-ok shard is not rewritten
    for name in ("stats.json", "shardindex.json"):
        now, reference = json.loads((out / name).read_text()), json.loads((clean / name).read_text())
        if name == "stats.json":
            now, reference = now["status"], reference["status"]
        assert now == reference, name
    run = json.loads((out / "run.json").read_text())
    validate(run, "run")
    assert run["totals"]["status"] == {"ok": 6}
    assert [r["shards"] for r in run["redone"]] == [[1, 2]]
    assert [(c["key"], c["from"], c["to"]) for c in run["location_changes"]] == [
        ("source.images", str(flaky), str(dataset["images"]))
    ]
    run_pipeline(fixed, REDO)  # nothing retryable is left: a no-op
    assert shard_bytes(out) == shard_bytes(clean)
    assert len(json.loads((out / "run.json").read_text())["redone"]) == 1


def test_the_error_rate_stops_advice_works(dataset, clean, tmp_path):
    """A wrong images folder trips the stop; the printed advice (fix it, rerun with --redo-failed) leads
    to the clean run's bytes."""
    out, empty = tmp_path / "out", tmp_path / "empty"
    empty.mkdir()
    wrong = tiny_run_config(
        dataset, out, source__images=str(empty), run__workers=1, run__min_samples_for_error_rate=2
    )
    with pytest.raises(ErrorRateExceeded, match="--redo-failed") as stop:
        run_pipeline(wrong, QUIET)
    assert "source.images" in str(stop.value)
    assert is_shard_complete(out, 0) and not is_shard_complete(out, 2)

    run_pipeline(tiny_run_config(dataset, out, run__workers=1), REDO)
    assert shard_bytes(out) == shard_bytes(clean)


def _write_marker(out, index, status):
    for suffix in (".tar", ".parquet"):
        (out / f"{index:05d}{suffix}").write_bytes(b"x")
    (out / f"{index:05d}_stats.json").write_text(json.dumps({"status": status}))


def test_only_complete_shards_with_retryable_failures_are_redone(tmp_path):
    _write_marker(tmp_path, 0, {"ok": 2})
    _write_marker(tmp_path, 1, {"ok": 1, "failed_missing": 1})
    _write_marker(tmp_path, 2, {"failed_duplicate_id": 1, "failed_too_large": 1})
    _write_marker(tmp_path, 3, {"failed_size_mismatch": 2})
    _write_marker(tmp_path, 4, {"ok": 1, "failed_caption": 1})
    _write_marker(tmp_path, 5, {"failed_decode": 1, "failed_verify": 1})
    (tmp_path / "00006.tar").write_bytes(b"x")  # incomplete: redone by any run anyway
    assert shards_to_redo(tmp_path, list(range(7))) == [1, 4, 5]
    assert shards_to_redo(tmp_path, [0, 2, 3, 4]) == [4]  # --shards narrows it
    assert RETRYABLE_STATUSES == {
        "failed_missing",
        "failed_decode",
        "failed_caption",
        "failed_parse",
        "failed_detect",
        "failed_tag",
        "failed_verify",
    }


def test_a_reopened_shard_is_incomplete_until_rewritten(dataset, clean, tmp_path):
    """The state a kill right after reopening leaves: no marker, so any rerun redoes the shard."""
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    reopen_shard(out, 1)
    assert not is_shard_complete(out, 1) and (out / "00001.tar").exists()
    stamps = _stamps(out, ["00000.tar", "00002.tar"])
    run_pipeline(tiny_run_config(dataset, out), QUIET)
    assert shard_bytes(out) == shard_bytes(clean)
    assert _stamps(out, stamps) == stamps


def test_the_config_hash_leaves_out_locations_only(dataset, tmp_path):
    base = tiny_run_config(dataset, tmp_path / "a")
    moved = tiny_run_config(
        dataset, tmp_path / "b", source__images=str(tmp_path), run__workers=1, run__max_error_rate=0.9
    )
    assert config_hash(moved) == config_hash(base)
    assert config_hash(tiny_run_config(dataset, tmp_path / "a", run__seed=1)) != config_hash(base)
    assert config_hash(tiny_run_config(dataset, tmp_path / "a", source__limit=3)) != config_hash(base)
