import json
import os
import subprocess
import sys

import pytest

from tests.helpers.train_shards import make_shards


@pytest.mark.slow
def test_torchrun_two_ranks_on_uneven_shards_does_not_hang(tmp_path):
    # 3 shards of 8, 8 and 2 samples: the ranks hold different sample counts
    make_shards(tmp_path / "a", n_shards=2, per_shard=8)
    make_shards(tmp_path / "b", n_shards=1, per_shard=2, first_id=100)
    (tmp_path / "b" / "00000.tar").rename(tmp_path / "a" / "00002.tar")
    (tmp_path / "b" / "00000_stats.json").rename(tmp_path / "a" / "00002_stats.json")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29577",
        "-m",
        "sgpipe.cli",
        "train",
        "pipelines/train_small.yaml",
        "--set",
        "model.preset=tiny",
        "--set",
        f"data.train={tmp_path / 'a'}",
        "--set",
        "data.batch_size=2",
        "--set",
        "data.num_workers=1",
        "--set",
        "optim.epochs=2",
        "--set",
        "run.log_every=1",
        "--set",
        f"run.out={tmp_path / 'run'}",
        "--set",
        "run.device=cpu",
        "--set",
        "optim.max_seconds=0",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    steps = [
        json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"loss"' in x
    ]
    # 18 samples // (2 ranks x batch 2) = 4 steps per epoch, on both ranks, 2 epochs
    assert [s["step"] for s in steps] == list(range(1, 9))
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
