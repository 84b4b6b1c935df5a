"""The R-Tagger's bf16 drift: scores under bf16 autocast against the same model in fp32, at full size.

    # full size (ResNet-50, 6 + 3 layers, RoBERTa-base's 12 layers), 2 images of 1000x800, CPU autocast
    python benchmarks/bench_rtagger_bf16.py
    # the same, and the same measurement with another checkout of sgpipe, in one run
    python benchmarks/bench_rtagger_bf16.py --baseline-tree /tmp/sgpipe-before
    # on a GPU (CUDA autocast, the path `verify.dtype: auto` takes there)
    python benchmarks/bench_rtagger_bf16.py --device cuda --images 8
    # a reduced model on small images, seconds on a CPU (the default test suite runs this)
    python benchmarks/bench_rtagger_bf16.py --quick

Weights: `fill.deterministic_fill` (the weights of the equality proof), tokenizer: byte-level (the text
encoder keeps RoBERTa-base's depth and width). Inputs per image: 80 COCO category names + "no objects" +
20 relation texts, 6 boxes, 30 candidate pairs (bench_rtagger.py's). The fp32 scores are the reference; the
bf16 scores are the same `score_batch` call inside `torch.autocast(device, torch.bfloat16)`. Reported: the
largest and the 99th-percentile |difference|, and how many keep/drop decisions at 0.05 and 0.20 (RLIPv2's
store and keep thresholds) differ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

THRESHOLDS = (0.05, 0.20)


def build_tagger(quick: bool, device: str):
    import tempfile

    from transformers import AutoTokenizer

    from sgpipe.models.rtagger import RTagger, RTaggerConfig
    from sgpipe.models.rtagger.fill import deterministic_fill, write_byte_tokenizer
    from sgpipe.models.rtagger.model import RTaggerNet

    folder = Path(tempfile.mkdtemp())
    vocab = write_byte_tokenizer(folder)
    fields = {"text": {"vocab_size": vocab}}
    if quick:  # smaller than the reference fixture's reduced model: one fusion, one decoder layer
        fields.update(enc_layers=2, dec_layers=1, min_size=128, max_size=213,
                      text={"vocab_size": vocab, "num_hidden_layers": 1})
    config = RTaggerConfig.from_dict(fields)
    net = RTaggerNet.without_init(config)
    deterministic_fill(net.state_dict(), config.dec_layers)
    return RTagger(net, AutoTokenizer.from_pretrained(str(folder)), device, bf16=False)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def measure(options) -> dict:
    """In the sgpipe found on sys.path: fp32 and bf16-autocast scores of the same inputs."""
    from bench_rtagger import _inputs, make_cases

    torch.set_num_threads(options.threads)
    tagger = build_tagger(options.quick, options.device)
    width, height = (150, 110) if options.quick else (options.width, options.height)
    items = _inputs(make_cases(options.images, width, height))
    started = time.perf_counter()
    exact = tagger.score_batch(items)
    fp32_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with torch.autocast(options.device.split(":")[0], dtype=torch.bfloat16):
        fast = tagger.score_batch(items)
    bf16_seconds = time.perf_counter() - started
    exact = np.concatenate([s.ravel() for s in exact]).astype(np.float64)
    fast = np.concatenate([s.ravel() for s in fast]).astype(np.float64)
    diff = np.abs(fast - exact)
    logit_diff = np.abs(_logit(fast) - _logit(exact))
    return {
        "scores": int(exact.size),
        "fp32_range": [round(float(exact.min()), 4), round(float(exact.max()), 4)],
        "max_abs_drift": float(diff.max()),
        "p99_abs_drift": float(np.quantile(diff, 0.99)),
        "mean_abs_drift": float(diff.mean()),
        "max_abs_logit_drift": float(logit_diff.max()),
        "p99_abs_logit_drift": float(np.quantile(logit_diff, 0.99)),
        "decisions_changed": {str(t): int(((exact >= t) != (fast >= t)).sum()) for t in THRESHOLDS},
        "fp32_seconds": round(fp32_seconds, 2),
        "bf16_seconds": round(bf16_seconds, 2),
    }


def run_tree(tree: Path, options) -> dict:
    """`measure` in a fresh process importing sgpipe from `tree`."""
    command = [sys.executable, __file__, "--role", "measure", "--device", options.device, "--images",
               str(options.images), "--width", str(options.width), "--height", str(options.height),
               "--threads", str(options.threads)] + (["--quick"] if options.quick else [])
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tree)
    if done.returncode:
        sys.exit(f"measuring {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=["report", "measure"], default="report", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help="cpu (CPU autocast) or cuda")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="reduced model, small images")
    parser.add_argument("--baseline-tree", type=Path, help="another sgpipe checkout, measured in the same run")
    parser.add_argument("--json", type=Path, help="also write the report here")
    options = parser.parse_args()
    if options.role == "measure":
        print(json.dumps(measure(options)))
        return
    report = {"device": options.device, "quick": options.quick, "images": options.images,
              "size": None if options.quick else f"{options.width}x{options.height}",
              "this_tree": run_tree(ROOT, options)}
    if options.baseline_tree:
        report["baseline_tree"] = run_tree(options.baseline_tree.resolve(), options)
    print(json.dumps(report, indent=1))
    if options.json:
        options.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
