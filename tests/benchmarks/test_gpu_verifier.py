"""The GPU verifier benchmark runs end to end in --quick mode, with torch and transformers only."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

DRIVER = """
import runpy, sys
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
heavy = sorted({"ray", "spacy", "webdataset", "pyarrow", "sgpipe.config", "sgpipe.stages", "sgpipe.train"}
               & set(sys.modules))
assert not heavy, heavy
"""


@pytest.mark.slow
def test_quick_verifier_benchmark_writes_summary(tmp_path):
    out = tmp_path / "verifier.json"
    command = [
        sys.executable,
        "-c",
        DRIVER,
        str(ROOT / "benchmarks" / "gpu_verifier.py"),
        "--quick",
        "--batch-sizes",
        "1,2",
        "--output",
        str(out),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["model"] == "tiny" and summary["pairs_per_image"] == 12
    assert summary["batched_fp32_images_per_s"] > 0 and summary["batch1_fp32_images_per_s"] > 0
    assert set(summary["batch_size_sweep"]) == {"1", "2"}
    assert all(row["images_per_s"] > 0 for row in summary["batch_size_sweep"].values())
