"""The GPU captioner benchmark runs end to end in --quick mode, with torch and transformers only."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs the script as __main__, then fails if it pulled in the pipeline's heavy dependencies.
DRIVER = """
import runpy, sys
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
heavy = sorted({"ray", "spacy", "webdataset", "pyarrow", "sgpipe.config", "sgpipe.stages"} & set(sys.modules))
assert not heavy, heavy
"""


def test_quick_benchmark_writes_summary(tmp_path):
    out = tmp_path / "caption.json"
    command = [
        sys.executable,
        "-c",
        DRIVER,
        str(ROOT / "benchmarks" / "gpu_caption.py"),
        "--quick",
        "--batches",
        "1",
        "--warmup",
        "0",
        "--batch-sizes",
        "2,3",
        "--captions",
        "3",
        "--max-length",
        "8",
        "--out",
        str(out),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["quick"] is True and summary["decoding"]["forced_length"] is True
    rows = [(r["engine"], r["dtype"], r["batch_size"]) for r in summary["results"]]
    assert rows == [(e, "float32", b) for b in (2, 3) for e in ("fast", "transformers")]
    for row in summary["results"]:
        assert row["images_per_s"] > 0
        assert row["tokens_per_caption"] == 8  # forced fixed length, prompt included
        assert row["peak_memory_gib"] >= 0  # resident memory above the loaded model, on a CPU
    # the same captions, token for token, in float32
    assert summary["identical_to_reference"] == {
        "check_images": 2,
        "reference": "transformers float32",
        "fast float32": 1.0,
    }
    assert summary["speedup_vs_transformers"]["fast"] > 0
    assert "img/s" in result.stdout


def test_graphs_need_cuda_and_unknown_engines_are_refused():
    script = str(ROOT / "benchmarks" / "gpu_caption.py")
    for engine in ("fast-graphs", "vllm"):
        result = subprocess.run(
            [sys.executable, script, "--quick", "--engine", engine],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2 and f"engine {engine} not available" in result.stderr
