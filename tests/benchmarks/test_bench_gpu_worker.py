"""The simulated-GPU benchmark runs end to end on a small world (Ray, spaCy, real shards), flat and pools."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_worker_benchmark_measures_the_busy_share_of_both_layouts(tmp_path):
    out = tmp_path / "summary.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_gpu_worker.py"), "--quick"]
    command += ["--work", str(tmp_path / "work"), "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]
    assert [row["layout"] for row in rows] == ["flat 2", "pools (1 device, 2 shard actors)"]
    for row in rows:
        assert row["images"] == 64
        # the lock's log: held at most the whole window (plus timing slack), and held at all
        assert 0 < row["busy_share"] <= 1.02
        assert row["images_per_s"] <= row["device_bound_images_per_s"] * 1.05
