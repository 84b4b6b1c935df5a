"""The GPU detect benchmark runs end to end in --quick mode, with torch and transformers only."""

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
    out = tmp_path / "detect.json"
    command = [
        sys.executable, "-c", DRIVER, str(ROOT / "benchmarks" / "gpu_detect.py"), "--quick",
        "--models", "grounding-dino-tiny,owlv2-base", "--batch-sizes", "2", "--phrases", "3",
        "--warmup", "0", "--out", str(out),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["quick"] is True and summary["phrases_per_image"] == 3
    assert [m["model"] for m in summary["models"]] == ["grounding-dino-tiny", "owlv2-base"]
    for model in summary["models"]:
        (row,) = model["results"]
        assert row["batch_size"] == 2 and row["rows"] == 2  # one prompt per image: 3 phrases fit
        assert row["model_images_per_s"] > 0 and row["stage_images_per_s"] > 0
    assert "stage i/s" in result.stdout
