"""Captioner throughput: the fast engine against the transformers engine, on one GPU (or the CPU).

    python benchmarks/gpu_caption.py                       # BLIP-large size, CUDA, bf16, batch 128,256,512
    python benchmarks/gpu_caption.py --engine fast --batch-sizes 512
    python benchmarks/gpu_caption.py --device cpu --batch-sizes 4 --batches 2   # CPU, fp32
    python benchmarks/gpu_caption.py --quick                   # tiny model on CPU (smoke test)

Needs only torch and transformers: the model is built from a config with random weights, the shapes
and FLOPs of Salesforce/blip-image-captioning-large (ViT-L/16 at 384 px, BERT-base decoder with
1024-wide cross-attention), so nothing is downloaded. Inputs are random pixel tensors already on the
device: image decoding and resizing are left out, only caption generation is timed.

Random weights make the end of a caption arbitrary, so every run uses min_length = max_length:
each caption is exactly max_length tokens (prompt included), the same work per image for both
engines. Decoding is otherwise RLIPv2's: 10 captions per image, top-k 50, top-p 0.9, repetition
penalty 1.1, sampled by sgpipe's per-image seeded sampler.

Engines: `transformers` (the model's generate), `fast` (sgpipe.models.blip_fast) and, on CUDA,
`fast-graphs` (the fast engine with its decode step replayed from a CUDA graph). Each batch size
runs every engine in turn, after the same warm-up. Identity: the check images are captioned in
float32 by the transformers engine (the reference); the share of each engine's captions equal to
the reference's, token for token, is reported in float32 and in the timed dtype.
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

# needs only torch/transformers
from sgpipe.models.blip_shapes import blip_config, prompt_ids  # noqa: E402
from sgpipe.models.captioner import Captioner, Decoding  # noqa: E402

ENGINES = ("fast", "fast-graphs", "transformers")


class GpuSampler:
    """Reads `nvidia-smi -lms 200` in the background; GPU utilisation samples over a time window."""

    def __init__(self, device: str) -> None:
        self.samples: list[tuple[float, float]] = []
        self.process = None
        if device != "cuda" or shutil.which("nvidia-smi") is None:
            return
        query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "200"]
        self.process = subprocess.Popen(query, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                self.samples.append((time.perf_counter(), float(line.split(",")[0])))
            except ValueError:
                continue

    def window(self, start: float, end: float) -> list[float]:
        return [value for stamp, value in list(self.samples) if start <= stamp <= end]

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=5)


def cpu_peak_bytes(run) -> int:
    """The most bytes of tensors alive at once during `run()`, above those alive before it: the
    CPU's counterpart of `torch.cuda.max_memory_allocated`, from the profiler's allocation log."""
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        run()
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.json"
        profiler.export_chrome_trace(str(trace))
        events = [e for e in json.loads(trace.read_text())["traceEvents"] if e.get("name") == "[memory]"]
    events = [e["args"] for e in sorted(events, key=lambda e: e["ts"]) if e["args"].get("Device Type") == 0]
    if not events:
        return 0
    before = events[0]["Total Allocated"] - events[0]["Bytes"]
    return max(e["Total Allocated"] for e in events) - before


def captions(ids: torch.Tensor, end: int) -> list[tuple[int, ...]]:
    """Each row's tokens up to its end token (the padding after it dropped)."""
    rows = []
    for row in ids.tolist():
        rows.append(tuple(row[: row.index(end) + 1] if end in row else row))
    return rows


def share_identical(ids: torch.Tensor, reference: torch.Tensor, end: int) -> float:
    ours, theirs = captions(ids, end), captions(reference, end)
    return round(sum(a == b for a, b in zip(ours, theirs)) / len(theirs), 4)


class Bench:
    def __init__(self, args: argparse.Namespace):
        from transformers import BlipForConditionalGeneration

        self.args = args
        self.size = "tiny" if args.quick else "large"
        torch.manual_seed(0)
        with torch.device(args.device):  # initialise on the device: much faster than on the host
            self.model = BlipForConditionalGeneration(blip_config(self.size)).eval()
        self.end = self.model.config.text_config.sep_token_id
        self.decoding = Decoding(
            num_return_sequences=args.captions, max_length=args.max_length, min_length=args.max_length
        )
        side = self.model.config.vision_config.image_size
        generator = torch.Generator().manual_seed(1)
        count = max(args.sizes + [args.check_batch])
        # on the device once: a host-to-device copy per batch would be timed with the engines
        self.pixels = torch.rand(count, 3, side, side, generator=generator).to(args.device)
        self.captioners: dict[tuple[str, torch.dtype], Captioner] = {}

    def captioner(self, engine: str, dtype: torch.dtype) -> Captioner:
        """One captioner per engine and dtype, kept through a measurement (its warm-up captures the
        CUDA graph, which holds the weights of that dtype)."""
        if (engine, dtype) not in self.captioners:
            self.captioners = {key: c for key, c in self.captioners.items() if key[1] == dtype}
            name = "fast" if engine.startswith("fast") else engine
            captioner = Captioner(
                f"random-blip-{self.size}-size",
                self.decoding,
                device=self.args.device,
                engine=name,
                cuda_graphs=engine == "fast-graphs",
            )
            captioner.model, captioner.dtype = self.model, dtype
            self.captioners[engine, dtype] = captioner
        return self.captioners[engine, dtype]

    def inputs(self, batch: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        ids = torch.tensor([prompt_ids(self.size)] * batch, device=self.args.device)
        pixels = self.pixels[:batch].to(self.args.device, dtype)
        return {"pixel_values": pixels, "input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def run(self, engine: str, batch: int, dtype: torch.dtype) -> torch.Tensor:
        return self.captioner(engine, dtype).generate_from_inputs(
            self.inputs(batch, dtype), list(range(batch))
        )

    def measure(self, engine: str, batch: int, dtype: torch.dtype, gpu: GpuSampler) -> dict:
        """Warm up, then time `batches` batches; images/s over the timed ones."""
        device = self.args.device
        row = {"engine": engine, "dtype": str(dtype).removeprefix("torch."), "batch_size": batch}
        self.captioners.clear()  # another engine's CUDA graph would hold its memory through this one
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            for _ in range(self.args.warmup):
                out = self.run(engine, batch, dtype)
            sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(self.args.batches):
                out = self.run(engine, batch, dtype)
            sync(device)
            end, cpu_end = time.perf_counter(), time.process_time()
        except torch.OutOfMemoryError:
            row["error"] = "out of memory"
            return row
        seconds = (end - start) / self.args.batches
        row.update(
            seconds_per_batch=round(seconds, 4),
            images_per_s=significant(batch / seconds),
            captions_per_s=significant(batch * self.args.captions / seconds),
            tokens_per_caption=int(out.shape[1]),
        )
        if device == "cpu":  # steadier than wall time on a shared machine: CPU time of all threads
            row["images_per_cpu_s"] = significant(batch * self.args.batches / (cpu_end - cpu_start))
        if device == "cuda":
            samples = gpu.window(start, end)
            row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            row["gpu_util_mean"] = round(sum(samples) / len(samples), 1) if samples else None
        else:  # weights + the most tensor bytes alive at once in one more (untimed) batch
            weights = sum(p.numel() * p.element_size() for p in self.model.parameters())
            peak = cpu_peak_bytes(lambda: self.run(engine, batch, dtype))
            row["peak_memory_gib"] = significant((weights + peak) / 2**30)
        return row


def significant(value: float) -> float:
    return float(f"{value:.4g}")


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny model on CPU, a few batches (smoke test)")
    parser.add_argument("--engine", default=None, help=f"comma list of {', '.join(ENGINES)}")
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    parser.add_argument(
        "--dtype", default=None, help="bfloat16 (default on CUDA) or float32 (default on CPU)"
    )
    parser.add_argument("--batch-sizes", default=None, help="images per batch, e.g. 128,256,512")
    parser.add_argument("--check-batch", type=int, default=None, help="images of the identity check (32)")
    parser.add_argument("--batches", type=int, default=None, help="timed batches per setting")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="engines take turns this many times per size")
    parser.add_argument("--captions", type=int, default=10, help="captions per image")
    parser.add_argument("--max-length", type=int, default=20, help="tokens per caption, prompt included")
    parser.add_argument("--out", default=None, help="also write the JSON summary here")
    args = parser.parse_args()
    args.device = args.device or ("cpu" if args.quick or not torch.cuda.is_available() else "cuda")
    cuda = args.device == "cuda"
    args.dtype = getattr(torch, args.dtype or ("bfloat16" if cuda else "float32"))
    default_engines = "fast,fast-graphs,transformers" if cuda else "fast,transformers"
    args.engines = (args.engine or default_engines).split(",")
    unknown = [e for e in args.engines if e not in ENGINES or (e == "fast-graphs" and not cuda)]
    if unknown:
        parser.error(
            f"engine {', '.join(unknown)} not available: {', '.join(ENGINES)} (fast-graphs on CUDA only)"
        )
    args.batches = args.batches or (2 if args.quick else 5)
    sizes = args.batch_sizes or ("2,4" if args.quick else "128,256,512" if cuda else "4")
    args.sizes = [int(s) for s in sizes.split(",")]
    args.check_batch = args.check_batch or (args.sizes[0] if args.quick or not cuda else 32)
    return args


def identity(bench: Bench, args: argparse.Namespace) -> dict:
    """Shares of captions equal to the float32 transformers engine's on the check images.

    Runs in float32 first, then leaves the model in the timed dtype (float32 -> bfloat16 loses bits,
    so the float32 runs must come first)."""
    batch, fp32 = args.check_batch, torch.float32
    reference = bench.run("transformers", batch, fp32)
    shares = {"check_images": batch, "reference": "transformers float32"}
    for engine in args.engines:
        if engine != "transformers":
            shares[f"{engine} float32"] = share_identical(
                bench.run(engine, batch, fp32), reference, bench.end
            )
    if args.dtype != fp32:
        bench.model.to(args.dtype)
        dtype_name = str(args.dtype).removeprefix("torch.")
        for engine in args.engines:
            shares[f"{engine} {dtype_name}"] = share_identical(
                bench.run(engine, batch, args.dtype), reference, bench.end
            )
    return shares


def main() -> None:
    from transformers import __version__ as transformers_version

    args = parse_args()
    bench = Bench(args)
    params = sum(p.numel() for p in bench.model.parameters())
    gpu = GpuSampler(args.device)
    results, skipped = [], set()
    try:
        shares = identity(bench, args)
        for size in args.sizes:
            for round_ in range(args.rounds):  # engines take turns: a busy spell hits them alike
                for engine in args.engines:
                    if engine in skipped:
                        continue
                    row = bench.measure(engine, size, args.dtype, gpu)
                    results.append({**row, "round": round_} if args.rounds > 1 else row)
                    if "error" in row:
                        skipped.add(engine)  # larger batches will not fit either
    finally:
        gpu.close()

    def best(engine: str) -> dict | None:
        rows = [r for r in results if r["engine"] == engine and "images_per_s" in r]
        return max(rows, key=lambda r: r["images_per_s"], default=None)

    bests = {engine: best(engine) for engine in args.engines}
    reference = bests.get("transformers")
    summary = {
        "benchmark": "caption",
        "quick": args.quick,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": transformers_version,
        "model": f"BLIP {bench.size} size, random weights, {params / 1e6:.0f}M parameters",
        "decoding": {
            "captions_per_image": args.captions,
            "top_p": 0.9,
            "top_k": 50,
            "repetition_penalty": 1.1,
            "max_length": args.max_length,
            "min_length": args.max_length,
            "forced_length": True,
        },
        "identical_to_reference": shares,
        "results": results,
        "best": bests,
        "speedup_vs_transformers": {
            engine: round(row["images_per_s"] / reference["images_per_s"], 2)
            for engine, row in bests.items()
            if row and reference and engine != "transformers"
        },
    }
    if args.device == "cpu":

        def per_cpu_second(engine: str) -> float:
            return max(
                r["images_per_cpu_s"] for r in results if r["engine"] == engine and "images_per_cpu_s" in r
            )

        summary["speedup_vs_transformers_cpu_time"] = {
            engine: round(per_cpu_second(engine) / per_cpu_second("transformers"), 2)
            for engine in args.engines
            if "transformers" in args.engines and engine != "transformers"
        }
    print(json.dumps(summary, indent=2))
    print_table(summary)
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


def print_table(summary: dict) -> None:
    print()
    header = ("engine", "dtype", "batch", "img/s", "capt/s", "s/batch", "img/CPU-s", "GPU %", "GiB")
    print("{:13} {:9} {:>5} {:>9} {:>9} {:>8} {:>9} {:>6} {:>6}".format(*header))
    for r in summary["results"]:
        if "error" in r:
            print(f"{r['engine']:13} {r['dtype']:9} {r['batch_size']:>5} {r['error']}")
            continue
        util = "-" if r.get("gpu_util_mean") is None else r["gpu_util_mean"]
        print(
            f"{r['engine']:13} {r['dtype']:9} {r['batch_size']:>5} {r['images_per_s']:>9} "
            f"{r['captions_per_s']:>9} {r['seconds_per_batch']:>8} {r.get('images_per_cpu_s', '-'):>9} "
            f"{util:>6} {r.get('peak_memory_gib', '-'):>6}"
        )
    print()
    for name, share in summary["identical_to_reference"].items():
        if name not in ("check_images", "reference"):
            print(f"identical to {summary['identical_to_reference']['reference']}: {name} {share:.1%}")
    for engine, ratio in summary["speedup_vs_transformers"].items():
        print(f"{engine} best: {ratio}x the transformers engine's best images/s")
    for engine, ratio in summary.get("speedup_vs_transformers_cpu_time", {}).items():
        print(f"{engine} best: {ratio}x the transformers engine's images per CPU-second")


if __name__ == "__main__":
    main()
