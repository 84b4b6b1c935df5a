"""The compare benchmark's quick mode runs and reports what docs/BENCHMARKS.md quotes."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_compare_benchmark_reports_time_and_memory():
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_compare.py"), "--quick"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    numbers = json.loads(result.stdout)
    assert numbers["images"] == 200 and numbers["relations_a"] == 2000
    # B drops about a tenth of A's relations and adds as many new ones
    assert 0.8 * 2000 < numbers["both"] < 0.95 * 2000 and 1800 < numbers["relations_b"] < 2200
    assert numbers["pearson"] > 0.95  # confidences moved by at most 0.05
    assert numbers["seconds"] > 0 and numbers["peak_rss_beyond_imports_mib"] >= 0
