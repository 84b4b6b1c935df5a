"""The model-input benchmark runs and reports every figure the docs quote."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_input_benchmark_reports_host_costs():
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_inputs.py"), "--images", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    names = ("caption_inputs_on_host", "verifier_inputs_on_host", "uint8_tensor", "cpu_resize_bicubic_384")
    assert all(figures[f"{name}_ms"] > 0 for name in names)
    assert figures["host_ms_now_with_a_gpu"] == round(2 * figures["uint8_tensor_ms"], 2)
