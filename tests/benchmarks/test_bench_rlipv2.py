"""The RLIPv2 formats benchmark runs end to end on a small file and reports its figures."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rlipv2_benchmark_converts_and_exports(tmp_path):
    out = tmp_path / "summary.json"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "bench_rlipv2.py"),
        "--images", "120", "--work", str(tmp_path / "work"), "--out", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = json.loads(out.read_text())["results"]
    assert row["images"] == 120 and row["convert_images_per_second"] > 0 and row["export_peak_rss_mib"] > 0
    exported = json.loads((tmp_path / "work" / "120" / "export.json").read_text())
    assert len(exported) == 120 and exported[0]["dataset"] == "o365"
