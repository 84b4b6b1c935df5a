import json
import tarfile

import pyarrow.parquet as pq
import pytest

from sgpipe.errors import SgpipeError
from sgpipe.tools.reshard import reshard
from tests.helpers.schemas import validate
from tests.helpers.tiny_shards import make_output


def _members(folder):
    members = []
    for path in sorted(folder.glob("*.tar")):
        with tarfile.open(path) as tar:
            members += [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    return members


def test_reshard_into_equal_shards_copies_members_byte_for_byte(tmp_path):
    make_output(tmp_path / "src", n_images=7, per_shard=2, failed=1)
    summary = reshard(str(tmp_path / "src"), tmp_path / "dst", 3)
    assert (
        summary.startswith("wrote 3 shards, 7 samples, 3 per shard") and "the last shard holds 1" in summary
    )
    assert _members(tmp_path / "dst") == _members(tmp_path / "src")
    index = json.loads((tmp_path / "dst" / "shardindex.json").read_text())
    validate(index, "shardindex")
    assert [s["nsamples"] for s in index["shardlist"]] == [3, 3, 1]
    for n in range(3):
        validate(json.loads((tmp_path / "dst" / f"{n:05d}_stats.json").read_text()), "shard_stats")
    stats = json.loads((tmp_path / "dst" / "stats.json").read_text())
    validate(stats, "stats")
    assert stats["totals"]["successes"] == 7 and stats["totals"]["n_kept"] == 5
    rows = pq.read_table(tmp_path / "dst" / "00000.parquet").to_pylist()
    assert [(r["key"], r["status"], r["n_kept"]) for r in rows] == [
        ("t-000000000001", "ok", 1),
        ("t-000000000002", "ok", 1),
        ("t-000000000003", "ok", 0),
    ]
    with tarfile.open(tmp_path / "dst" / "00000.tar") as tar:
        assert all(m.mtime == 0 for m in tar.getmembers())


def test_same_size_reshard_reproduces_the_writer_bytes(tmp_path):
    make_output(tmp_path / "src", n_images=4, per_shard=2, failed=0)
    reshard(str(tmp_path / "src"), tmp_path / "dst", 2)
    for name in ("00000.tar", "00001.tar", "00000.parquet", "00001.parquet"):
        assert (tmp_path / "dst" / name).read_bytes() == (tmp_path / "src" / name).read_bytes()


def test_reshard_label_only_and_brace_input(tmp_path):
    make_output(tmp_path / "src", n_images=5, per_shard=2, failed=0, images=False)
    summary = reshard(str(tmp_path / "src" / "{00000..00001}.tar"), tmp_path / "dst", 4)
    assert summary == f"wrote 1 shards, 4 samples, 4 per shard to {tmp_path / 'dst'}"


def test_reshard_refuses_bad_arguments(tmp_path):
    make_output(tmp_path / "src", n_images=2, per_shard=2, failed=0)
    with pytest.raises(SgpipeError, match=">= 1"):
        reshard(str(tmp_path / "src"), tmp_path / "dst", 0)
    with pytest.raises(SgpipeError, match="already holds shards"):
        reshard(str(tmp_path / "src"), tmp_path / "src", 1)
