"""The R-Tagger benchmarks' quick modes run end to end on a CPU and report their figures."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, tmp_path: Path, *options: str) -> dict:
    out = tmp_path / "report.json"
    command = [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--json", str(out), *options]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def test_bf16_drift_benchmark_reports_score_and_logit_drift(tmp_path):
    report = _run("bench_rtagger_bf16.py", tmp_path, "--threads", "1")["this_tree"]
    assert report["scores"] == 2 * 30 * 20  # 2 images x 30 pairs x 20 relation texts
    assert 1e-4 < report["max_abs_drift"] < 0.1 and report["max_abs_logit_drift"] >= report["p99_abs_logit_drift"] > 0
    assert set(report["decisions_changed"]) == {"0.05", "0.2"}


def test_convert_benchmark_reports_peak_memory(tmp_path):
    report = _run("bench_rtagger_convert.py", tmp_path)
    assert report["checkpoint"]["file_gib"] > 0.1
    assert 0 < report["this_tree"]["peak_rss_gib"] < 4 and report["this_tree"]["summary"].startswith("wrote ")
