"""Captioner throughput: RLIPv2's settings against sgpipe's, on one GPU.

    python benchmarks/gpu_caption.py                      # BLIP-large size, CUDA
    python benchmarks/gpu_caption.py --quick              # tiny model on CPU (smoke test)
    python benchmarks/gpu_caption.py --out caption.json --batch-sizes 64,128,256,512

Needs only torch and transformers: the model is built from a config with random weights, the same
shapes and FLOPs as Salesforce/blip-image-captioning-large (ViT-L/16 at 384 px, BERT-base decoder
with cross-attention), so no download. Inputs are random pixel tensors already on the device:
image decoding and resizing are left out, only generation is timed.

Random weights make EOS arbitrary, so both variants run with min_length = max_length: every caption
is exactly max_length tokens (prompt included), a fixed and equal amount of work per image.

  rlipv2  fp32, batch 32, 10 captions per image through num_return_sequences, transformers'
          sampling (top_k 50, top_p 0.9), repetition penalty 1.1, max_length 20 -- as RLIPv2 ran BLIP.
  sgpipe  sgpipe's generation path (sgpipe.models.captioner: per-image seeded nucleus sampling),
          same decoding, in bf16 (the default on CUDA) at several batch sizes; plus fp32 at batch 32
          to separate the effect of the sampler from that of the dtype.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from sgpipe.models.captioner import Captioner, Decoding  # noqa: E402 - needs only torch/transformers

# BERT uncased ids of RLIPv2's prompt: [DEC] a picture of [SEP] ([DEC] is BLIP's decoder start token;
# BLIP's generate drops the closing [SEP]); the tiny --quick vocabulary has its own ids
BLIP_PROMPT_IDS = [30522, 1037, 3861, 1997, 102]
TINY_PROMPT_IDS = [120, 10, 11, 12, 3]


def blip_config(quick: bool):
    from transformers import BlipConfig

    if quick:
        vision = dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        )
        text = dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            encoder_hidden_size=32,
            max_position_embeddings=64,
            vocab_size=128,
            bos_token_id=120,
            pad_token_id=0,
            sep_token_id=3,
            eos_token_id=2,
        )
    else:  # Salesforce/blip-image-captioning-large
        vision = dict(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=384,
            patch_size=16,
        )
        text = dict(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            encoder_hidden_size=1024,
            max_position_embeddings=512,
            vocab_size=30524,
            bos_token_id=30522,
            pad_token_id=0,
            sep_token_id=102,
            eos_token_id=2,
        )
    return BlipConfig(vision_config=vision, text_config=text, projection_dim=256 if quick else 512)


class GpuSampler:
    """Reads `nvidia-smi -lms 200` in the background; mean utilisation over a time window."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.process = None
        if shutil.which("nvidia-smi") is None or not torch.cuda.is_available():
            return
        self.process = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "200"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                self.samples.append((time.perf_counter(), float(line.split(",")[0])))
            except ValueError:
                continue

    def mean(self, start: float, end: float) -> float | None:
        window = [value for stamp, value in self.samples if start <= stamp <= end]
        return round(sum(window) / len(window), 1) if window else None

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=5)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(name, run_batch, batch_size, args, gpu: GpuSampler, dtype: torch.dtype, quick: bool):
    """Warm up, then time `args.batches` batches; images/s over the timed ones."""
    device = args.device
    size = 32 if quick else 384
    pixels = torch.rand(batch_size, 3, size, size, device=device).to(dtype)
    prompt = torch.tensor([TINY_PROMPT_IDS if quick else BLIP_PROMPT_IDS] * batch_size, device=device)
    inputs = {"pixel_values": pixels, "input_ids": prompt, "attention_mask": torch.ones_like(prompt)}
    row = {"variant": name, "dtype": str(dtype).removeprefix("torch."), "batch_size": batch_size}
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        for _ in range(args.warmup):
            out = run_batch(inputs)
        sync(device)
        start = time.perf_counter()
        for _ in range(args.batches):
            out = run_batch(inputs)
        sync(device)
        end = time.perf_counter()
    except torch.OutOfMemoryError:
        row["error"] = "out of memory"
        return row
    seconds = (end - start) / args.batches
    row.update(
        seconds_per_batch=round(seconds, 4),
        images_per_s=round(batch_size / seconds, 2),
        captions_per_s=round(batch_size * args.captions / seconds, 1),
        tokens_per_caption=int(out.shape[1]),
        gpu_util_mean=gpu.mean(start, end),
    )
    if device == "cuda":
        row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny model on CPU, a few batches (smoke test)")
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    parser.add_argument("--batch-sizes", default=None, help="sgpipe bf16 batch sizes, e.g. 32,64,128,256")
    parser.add_argument("--rlipv2-batch", type=int, default=None, help="RLIPv2's batch size (32)")
    parser.add_argument("--batches", type=int, default=None, help="timed batches per setting")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--captions", type=int, default=10, help="captions per image")
    parser.add_argument("--max-length", type=int, default=20, help="tokens per caption, prompt included")
    parser.add_argument("--out", default=None, help="also write the JSON summary here")
    args = parser.parse_args()
    args.device = args.device or ("cpu" if args.quick or not torch.cuda.is_available() else "cuda")
    args.batches = args.batches or (2 if args.quick else 5)
    rlipv2_batch = args.rlipv2_batch or (4 if args.quick else 32)
    sizes = [int(s) for s in (args.batch_sizes or ("2,8" if args.quick else "32,64,128,256,512")).split(",")]

    from transformers import BlipForConditionalGeneration
    from transformers import __version__ as transformers_version

    torch.manual_seed(0)
    config = blip_config(args.quick)
    with torch.device(args.device):  # initialise on the device: much faster than on the host at this size
        model = BlipForConditionalGeneration(config).eval()
    params = sum(p.numel() for p in model.parameters())
    # forced fixed length (see the module docstring), identical for both variants
    decoding = Decoding(
        num_return_sequences=args.captions, max_length=args.max_length, min_length=args.max_length
    )

    def rlipv2_batch_fn(inputs):
        with torch.inference_mode():
            return model.generate(
                **inputs,
                do_sample=True,
                top_p=0.9,
                top_k=50,
                num_return_sequences=args.captions,
                max_length=args.max_length,
                min_length=args.max_length,
                repetition_penalty=1.1,
            )

    def sgpipe_fn(captioner: Captioner):
        def run(inputs):
            seeds = list(range(inputs["pixel_values"].shape[0]))
            return captioner.generate_from_inputs(inputs, seeds)

        return run

    def captioner_for(dtype_name: str) -> Captioner:
        captioner = Captioner("random-blip-large-size", decoding, device=args.device, dtype=dtype_name)
        captioner.model = model.to(captioner.dtype)
        return captioner

    gpu = GpuSampler()
    results = []
    try:
        model.to(torch.float32)
        results.append(measure("rlipv2", rlipv2_batch_fn, rlipv2_batch, args, gpu, torch.float32, args.quick))
        fp32 = captioner_for("float32")
        results.append(measure("sgpipe", sgpipe_fn(fp32), rlipv2_batch, args, gpu, torch.float32, args.quick))
        bf16 = captioner_for("bfloat16")
        for size in sizes:
            row = measure("sgpipe", sgpipe_fn(bf16), size, args, gpu, torch.bfloat16, args.quick)
            results.append(row)
            if "error" in row:
                break  # larger batches will not fit either
    finally:
        gpu.close()

    baseline = results[0].get("images_per_s")
    best = max((r for r in results[2:] if "images_per_s" in r), key=lambda r: r["images_per_s"], default=None)
    summary = {
        "benchmark": "caption",
        "quick": args.quick,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": transformers_version,
        "model": f"BLIP {'tiny' if args.quick else 'large'} size, random weights, "
        f"{params / 1e6:.0f}M parameters",
        "decoding": {
            "captions_per_image": args.captions,
            "top_p": 0.9,
            "top_k": 50,
            "repetition_penalty": 1.1,
            "max_length": args.max_length,
            "min_length": args.max_length,
            "forced_length": True,
        },
        "results": results,
        "best_sgpipe": best,
        "speedup_vs_rlipv2": round(best["images_per_s"] / baseline, 2) if best and baseline else None,
    }
    print(json.dumps(summary, indent=2))
    print()
    header = ("variant", "dtype", "batch", "img/s", "capt/s", "s/batch", "GPU %", "GiB")
    print("{:8} {:9} {:>5} {:>9} {:>9} {:>8} {:>6} {:>6}".format(*header))
    for r in results:
        if "error" in r:
            print(f"{r['variant']:8} {r['dtype']:9} {r['batch_size']:>5} {r['error']}")
            continue
        util = "-" if r.get("gpu_util_mean") is None else r["gpu_util_mean"]
        print(
            f"{r['variant']:8} {r['dtype']:9} {r['batch_size']:>5} {r['images_per_s']:>9} "
            f"{r['captions_per_s']:>9} {r['seconds_per_batch']:>8} {util:>6} "
            f"{r.get('peak_memory_gib', '-'):>6}"
        )
    if summary["speedup_vs_rlipv2"]:
        print(
            f"\nsgpipe best ({best['dtype']}, batch {best['batch_size']}): "
            f"{summary['speedup_vs_rlipv2']}x RLIPv2's images/s"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
