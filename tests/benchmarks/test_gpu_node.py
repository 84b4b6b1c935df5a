"""The GPU-sharing benchmark (flat workers, device pools) runs end to end in --quick mode, with torch
and transformers only."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.test_gpu_verifier import DRIVER

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_gpu_node_benchmark_writes_summary(tmp_path):
    out = tmp_path / "node.json"
    script = str(ROOT / "benchmarks" / "gpu_node.py")
    command = [sys.executable, "-c", DRIVER, script, "--quick", "--workers-per-gpu", "1", "2"]
    command += ["--shard-processes", "2", "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["quick"] and summary["gpu_alone_images_per_s"] > 0
    rows = summary["results"]
    assert [(r["layout"], r.get("workers_per_gpu", r.get("shard_processes"))) for r in rows] == [
        ("flat", 1), ("flat", 2), ("pools", 2)
    ]  # fmt: skip
    assert all(r["images_per_s"] > 0 and r["host_ms"] == 10.3 and r["gpu_share"] > 0 for r in rows)
