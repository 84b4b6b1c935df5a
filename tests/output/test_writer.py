import json
import tarfile

import pyarrow.parquet as pq
import pytest
import webdataset as wds

from sgpipe.errors import OutputFault
from sgpipe.output.finalize import finalize_outputs
from sgpipe.output.writer import is_shard_complete, remove_partial_shard, shard_paths, write_shard
from sgpipe.records import Box, Caption, Relation, Triplet
from sgpipe.shards import iter_shard_samples
from tests.helpers.samples import build_sample
from tests.helpers.schemas import validate

PROVENANCE = {"sgpipe": "0", "config_hash": "0" * 16, "models": {}}


def _samples():
    good = build_sample(
        1,
        file_name="a.jpg",
        width=10,
        height=10,
        objects=[Box(7, "dog", 18, [1, 1, 4, 4]), Box(8, "person", 1, [5, 5, 4, 4])],
        captions=[Caption(0, "a dog next to a person", "annotation")],
        triplets=[Triplet("dog", "next to", "person", "dog", "next to", "person", 0, 1, [0])],
        relations=[Relation(0, 7, 8, "next to", 0, 0.5, 0.9, True)],
        image_bytes=b"\xff\xd8fakejpeg",
        image_ext="jpg",
    )
    bad = build_sample(2, file_name="b.jpg", width=10, height=10)
    bad.fail("failed_missing", "no file")
    return [good, bad]


def test_shard_holds_ok_samples_and_a_row_per_entry(tmp_path):
    stats = write_shard(tmp_path, 0, _samples(), PROVENANCE, timings={"wall_seconds": 1.0, "stages": {}})
    paths = shard_paths(tmp_path, 0)
    with tarfile.open(paths["tar"]) as tar:
        assert tar.getnames() == ["t-000000000001.jpg", "t-000000000001.json"]
        assert all(m.mtime == 0 for m in tar.getmembers())
    rows = pq.read_table(paths["parquet"]).to_pylist()
    assert [(r["key"], r["status"], r["n_kept"]) for r in rows] == [
        ("t-000000000001", "ok", 1),
        ("t-000000000002", "failed_missing", 0),
    ]
    assert stats["status"] == {"failed_missing": 1, "ok": 1} and stats["nsamples"] == 1
    validate(json.loads(paths["stats"].read_text()), "shard_stats")
    record = next(iter_shard_samples(str(paths["tar"]))).record
    validate(record, "scene_graph")
    # webdataset reads it as usual
    sample = next(iter(wds.WebDataset(str(paths["tar"]), shardshuffle=False)))
    assert sample["__key__"] == "t-000000000001" and sample["jpg"] == b"\xff\xd8fakejpeg"


def test_same_samples_same_bytes_whatever_the_timings(tmp_path):
    write_shard(tmp_path / "a", 0, _samples(), PROVENANCE, timings={"wall_seconds": 1.0})
    write_shard(tmp_path / "b", 0, _samples(), PROVENANCE, timings={"wall_seconds": 9.0})
    for kind in ("tar", "parquet"):
        assert (
            shard_paths(tmp_path / "a", 0)[kind].read_bytes()
            == shard_paths(tmp_path / "b", 0)[kind].read_bytes()
        )


def test_label_only_shards_omit_images(tmp_path):
    write_shard(tmp_path, 3, _samples(), PROVENANCE, write_images=False)
    with tarfile.open(shard_paths(tmp_path, 3)["tar"]) as tar:
        assert tar.getnames() == ["t-000000000001.json"]


def test_a_failed_write_leaves_no_complete_looking_shard(tmp_path, monkeypatch):
    import sgpipe.output.writer as write

    real = write.atomic_write_bytes

    def fail_on_parquet(path, data):
        if path.suffix == ".parquet":
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(write, "atomic_write_bytes", fail_on_parquet)
    with pytest.raises(OutputFault, match="no space left on the device"):  # the run's fault, not the images'
        write_shard(tmp_path, 0, _samples(), PROVENANCE)
    assert not is_shard_complete(tmp_path, 0)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    monkeypatch.setattr(write, "atomic_write_bytes", real)
    write_shard(tmp_path, 0, _samples(), PROVENANCE)  # space is back: the shard is redone
    assert is_shard_complete(tmp_path, 0)


def test_finalize_builds_index_and_stats(tmp_path):
    write_shard(tmp_path, 0, _samples(), PROVENANCE, timings={"wall_seconds": 2.0, "stages": {"parse": 0.5}})
    write_shard(tmp_path, 1, _samples(), PROVENANCE, timings={"wall_seconds": 2.0, "stages": {"parse": 0.5}})
    stats = finalize_outputs(tmp_path, "t")
    index = json.loads((tmp_path / "shardindex.json").read_text())
    validate(index, "shardindex")
    validate(stats, "stats")
    assert [s["url"] for s in index["shardlist"]] == ["00000.tar", "00001.tar"]
    assert stats["totals"]["count"] == 4 and stats["status"] == {"failed_missing": 2, "ok": 2}
    assert stats["predicates"] == {"next to": 2} and stats["throughput"]["stages"]["parse"]["seconds"] == 1.0


def test_what_a_killed_writer_leaves_of_a_shard_is_removed_and_nothing_else(tmp_path):
    """A writer killed mid-shard leaves hidden temporaries of any of the three files, the marker's
    included (`.NAME.tmpPID`); removing the shard's partial files drops all of them and touches no
    other shard's."""
    leftovers = [".00003.tar.tmp11", ".00003.parquet.tmp12", ".00003_stats.json.tmp13", "00003.tar"]
    others = [".00004_stats.json.tmp13", ".00030.tar.tmp11", "00004.tar"]
    for name in leftovers + others:
        (tmp_path / name).write_bytes(b"x")
    remove_partial_shard(tmp_path, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others)
