import json
import random

import pyarrow.parquet as pq
import pytest

from sgpipe.errors import ConfigError, ConfigMismatchError, SgpipeError
from sgpipe.output.finalize import finalize_outputs
from sgpipe.output.writer import write_shard
from sgpipe.run.reverify import reverify
from sgpipe.shards import iter_shard_samples
from tests.helpers.samples import build_sample
from tests.helpers.train_shards import squares_sample


@pytest.fixture(scope="module")
def checkpoint(tiny_verifier):
    return tiny_verifier


def _out(folder):
    rng = random.Random(0)
    for index in range(2):
        samples = [squares_sample(10 * index + i, rng) for i in range(3)]
        missing = build_sample(10 * index + 9, "synth", file_name="gone.jpg", width=64, height=64)
        missing.fail("failed_missing", "no such file")
        write_shard(
            folder, index, samples[:2] + [missing] + samples[2:], {"sgpipe": "0", "models": {"tag": {}}}
        )
    finalize_outputs(folder, "synth")
    (folder / "run.json").write_text(json.dumps({"config": {"verify": {}}, "models": {}}))


def test_reverify_rescores_stored_relations_and_keeps_failures(tmp_path, checkpoint):
    _out(tmp_path / "old")
    summary = reverify(
        tmp_path / "old",
        checkpoint,
        tmp_path / "new",
        ["verify.store_threshold=0.0", "verify.keep_threshold=0.5"],
    )
    assert "re-scored 2 shards" in summary
    old = {s.key: s.record for s in iter_shard_samples(str(tmp_path / "old"))}
    new = {s.key: s for s in iter_shard_samples(str(tmp_path / "new"))}
    assert set(new) == set(old) and all(s.image_bytes for s in new.values())
    for key, item in new.items():
        relations = item.record["relations"]
        assert len(relations) == len(old[key]["relations"])
        assert all(
            r["confidence"] not in (0.0, 1.0) and r["kept"] == (r["confidence"] >= 0.5) for r in relations
        )
        assert item.record["provenance"]["models"]["verify"]["checkpoint"] == str(checkpoint)
    rows = pq.read_table(tmp_path / "new" / "00000.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["ok", "ok", "failed_missing", "ok"]
    run = json.loads((tmp_path / "new" / "run.json").read_text())
    assert run["thresholds"] == {"store": 0.0, "keep": 0.5} and run["totals"]["count"] == 8
    # the same command again finds every shard complete; other thresholds into NEW are refused
    overrides = ["verify.store_threshold=0.0", "verify.keep_threshold=0.5"]
    again = reverify(tmp_path / "old", checkpoint, tmp_path / "new", overrides)
    assert "re-scored 0 shards (2 already done)" in again
    with pytest.raises(ConfigMismatchError, match="--force"):
        reverify(tmp_path / "old", checkpoint, tmp_path / "new", [])


def test_reverify_drops_relations_below_the_new_store_threshold(tmp_path, checkpoint):
    _out(tmp_path / "old")
    reverify(
        tmp_path / "old",
        checkpoint,
        tmp_path / "new",
        ["verify.store_threshold=0.99", "verify.keep_threshold=0.99"],
    )
    assert all(not s.record["relations"] for s in iter_shard_samples(str(tmp_path / "new")))


def test_reverify_refuses_bad_arguments(tmp_path, checkpoint):
    _out(tmp_path / "old")
    with pytest.raises(ConfigError, match="reverify takes"):
        reverify(tmp_path / "old", checkpoint, tmp_path / "new", ["caption.enabled=true"])
    with pytest.raises(SgpipeError, match="must differ"):
        reverify(tmp_path / "old", checkpoint, tmp_path / "old", [])
    with pytest.raises(SgpipeError, match="not a verifier checkpoint"):
        reverify(tmp_path / "old", tmp_path, tmp_path / "new", [])
