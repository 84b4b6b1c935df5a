"""An output that refuses writes (a full disk or quota, a read-only file system, an object store
denying or out of room) stops the run at once, naming the cause and the file, counting no image as
failed; once the output takes writes again, the same command finishes with the bytes of an
undisturbed run."""

import errno
import json
import subprocess
from pathlib import Path

import pytest

from sgpipe.errors import OutputFault
from sgpipe.output.failed_shards import failed_shards_path
from sgpipe.output.guards import OutputLock
from sgpipe.run import run_pipeline
from tests.helpers.coco_fixture import make_coco
from tests.helpers.faults import REFUSED_NAME, refuse_writes, stages_on_a_full_disk
from tests.helpers.outputs import shard_bytes
from tests.helpers.runs import QUIET, tiny_run_config
from tests.helpers.s3 import Refusal, object_bytes, s3_server

CAUSES = {
    errno.ENOSPC: "no space left on the device (ENOSPC)",
    errno.EDQUOT: "the disk quota is exceeded (EDQUOT)",
    errno.EROFS: "the file system is read-only (EROFS)",
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_coco(tmp_path_factory.mktemp("coco"), n_images=5)


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    run_pipeline(_config(dataset, out), QUIET)
    return shard_bytes(out)


def _config(paths, out, **overrides):
    return tiny_run_config(paths, out, output__samples_per_shard=1, **overrides)


def _assert_stopped_for_the_output(fault, where, cause, complete):
    message = str(fault)
    assert f"Stopped: the output cannot be written: {cause}, at {where}" in message
    assert "No image was counted as failed" in message and "--redo-failed" not in message
    assert f"Shards: {complete} of 5 complete, 0 failed, {5 - complete} not written" in message
    assert "rerun the same command to resume" in message and fault.exit_code == 2


@pytest.mark.parametrize("code", sorted(CAUSES))
def test_a_full_or_read_only_disk_stops_the_run_at_once_and_counts_no_image(
    dataset, reference, tmp_path, monkeypatch, code
):
    import sgpipe.output.atomic as atomic

    out = tmp_path / "out"
    monkeypatch.setattr(atomic, "_atomic_file", atomic._atomic_file)  # undone after the test
    refused = refuse_writes(REFUSED_NAME, code)
    with pytest.raises(OutputFault) as raised:
        run_pipeline(_config(dataset, out), QUIET)
    _assert_stopped_for_the_output(raised.value, out / REFUSED_NAME, CAUSES[code], complete=2)
    assert len(refused) == 1, "not retried: every attempt would meet the same disk"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["status"] == {"ok": 2} and stats["retries"]["failed_shards"] == 0
    listing = json.loads(failed_shards_path(out).read_text())
    assert listing["failed"] == [] and listing["unfinished"] == ["00002", "00003", "00004"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".0")]
    with OutputLock(out):
        pass  # released

    monkeypatch.undo()  # the disk takes writes again
    run_pipeline(_config(dataset, out), QUIET)
    assert shard_bytes(out) == reference
    assert not failed_shards_path(out).exists()


def test_a_full_disk_in_a_ray_worker_stops_the_run_with_its_shards_in_flight(
    dataset, reference, tmp_path, local_ray
):
    out = tmp_path / "out"
    config = _config(dataset, out, run__executor="ray", run__workers=2)
    with pytest.raises(OutputFault) as raised:
        run_pipeline(config, QUIET, stage_factory=stages_on_a_full_disk)
    message = str(raised.value)
    assert f"no space left on the device (ENOSPC), at {out / REFUSED_NAME}" in message
    assert "No image was counted as failed" in message and ", 0 failed," in message
    assert not (out / "00002_stats.json").exists()
    assert json.loads((out / "stats.json").read_text())["retries"]["failed_shards"] == 0
    assert not [p.name for p in out.iterdir() if p.name.startswith(".0")]
    run_pipeline(config, QUIET)  # the disk takes writes again (no fault in these workers)
    assert shard_bytes(out) == reference


@pytest.mark.parametrize(
    "code, status, cause",
    [
        ("AccessDenied", 403, "writing is refused"),
        ("XMinioStorageFull", 507, "the store is full or over its quota"),
    ],
)
def test_an_object_store_refusing_writes_stops_the_run(dataset, reference, code, status, cause):
    refusal = Refusal()
    with s3_server(refusal=refusal) as options:
        config = _config(
            dataset,
            "s3://bucket/refused",
            output__storage_options=json.dumps(options),
            output__lease_seconds=3,
        )
        refusal.arm(code, status, after=2)  # the store refuses writes once two shards are complete
        with pytest.raises(OutputFault) as raised:
            run_pipeline(config, QUIET)
        message = str(raised.value)
        assert f"Stopped: the output cannot be written: {cause}" in message
        assert "at s3://bucket/refused/00002.tar" in message and code in message
        assert "No image was counted as failed" in message and "Shards: 2 of 5 complete, 0 failed" in message
        refusal.lift()
        run_pipeline(config, QUIET)  # the store takes writes again: the same command finishes
        assert object_bytes(options, "s3://bucket/refused") == reference


@pytest.fixture
def small_disk(tmp_path):
    """Mounts a real file system of a given size (tmpfs: needs root; skipped otherwise)."""
    mounts = []

    def mount(size: int) -> Path:
        folder = tmp_path / f"disk{len(mounts)}"
        folder.mkdir()
        command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
        if subprocess.run(command, capture_output=True).returncode != 0:
            pytest.skip("cannot mount a small tmpfs here (needs root)")
        mounts.append(folder)
        return folder

    yield mount
    for folder in mounts:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_real_full_disk(tmp_path, small_disk):
    """A disk half the size of the output: full after a few shards, then given more room."""
    paths = make_coco(tmp_path / "big", n_images=8, width=320, height=240)
    reference = tmp_path / "reference"
    run_pipeline(tiny_run_config(paths, reference, output__samples_per_shard=1), QUIET)
    needed = sum(p.stat().st_size for p in reference.rglob("*") if p.is_file())
    disk = small_disk(needed // 2)
    config = tiny_run_config(paths, disk / "out", output__samples_per_shard=1)
    with pytest.raises(OutputFault, match="no space left on the device") as raised:
        run_pipeline(config, QUIET)
    assert f"at {disk / 'out'}/" in str(raised.value) and "No image was counted as failed" in str(
        raised.value
    )
    assert 1 <= len(list((disk / "out").glob("*_stats.json"))) < 8
    subprocess.run(["mount", "-o", f"remount,size={4 * needed}", str(disk)], check=True)  # room again
    run_pipeline(config, QUIET)
    assert shard_bytes(disk / "out") == shard_bytes(reference)
