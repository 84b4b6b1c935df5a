"""One GPU, used by workers as the flat layout places them and as device pools do, model work real.

    python benchmarks/gpu_node.py --out node.json                       # real sizes, CUDA
    python benchmarks/gpu_node.py --quick                               # tiny models on CPU (smoke test)

The counterpart of bench_gpu_worker.py (real host work, simulated GPU): here the GPU work is real and
the host work is simulated, by sleeping for what a worker does per image besides the models
(decode, parse, tag, write: --host-ms, 10.3 ms from sgpipe.run.estimate). The models: BLIP-large
(random weights, bf16; 10 captions of fixed length 20, from PIL images as sgpipe's path takes them:
uint8 tensors resized and normalised on the GPU) and the base verifier (ResNet-50 + RoBERTa-base,
random weights; 20 boxes, 10 predicates, every ordered pair).

- flat, k workers per GPU (the layout of `run.layout: flat`, `run.gpus_per_worker: 1/k`): k processes,
  each with its own copy of both models, each looping caption -> host work -> verify per chunk.
- pools, k shard processes (`run.layout: pools`): one device process holds one copy of both models and
  serves chunks with two threads (one's input preparation overlaps the other's forward pass); k host
  processes each keep two chunks in flight (host work, caption on the device, host work, verify on the
  device, host work), as shard actors do.
Images/s is every process's images over the slowest host's time, started together after a warm-up
chunk; the GPU alone (one process, no host work) gives the bound, and `gpu_share` the ratio to it.
Needs torch and transformers only (no Ray, spaCy or webdataset).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

PROMPT_WORDS = ["a", "picture", "of"]
DEVICE_THREADS = 2  # as a device actor serves chunks (sgpipe.run.executors.ray.actors.STAGE_CONCURRENCY)


def blip_processor(image_size: int):
    from transformers import BertTokenizerFast, BlipImageProcessor, BlipProcessor

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *PROMPT_WORDS]
    tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, bos_token="[DEC]")
    images = BlipImageProcessor(size={"height": image_size, "width": image_size})
    return BlipProcessor(image_processor=images, tokenizer=tokenizer)


def photos(n: int, seed: int) -> list:
    """COCO-sized (640 x 480) images with some smoothness, as PIL images."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).filter(ImageFilter.BoxBlur(2))
        for _ in range(n)
    ]


class Models:
    """Both models of a worker (or of a device process) on the benchmark's device, with one chunk's inputs."""

    def __init__(self, args: argparse.Namespace, rank: int):
        from gpu_verifier import make_examples
        from transformers import BlipForConditionalGeneration

        from sgpipe.models.blip_shapes import blip_config
        from sgpipe.models.captioner import Captioner, Decoding
        from sgpipe.models.verifier import Verifier, base_config, tiny_config

        torch.manual_seed(rank)
        self.device = torch.device(args.device)
        if self.device.type == "cpu":
            torch.set_num_threads(1)  # processes share the cores, as workers do
        dtype = "bfloat16" if self.device.type == "cuda" else "float32"
        decoding = Decoding(num_return_sequences=10, max_length=20, min_length=20)
        self.captioner = Captioner("random-blip-large-size", decoding, device=args.device, dtype=dtype)
        with torch.device(self.device):
            model = BlipForConditionalGeneration(blip_config("tiny" if args.quick else "large")).to(self.captioner.dtype).eval()
        self.captioner.model = model
        self.captioner.processor = blip_processor(32 if args.quick else 384)
        self.config = tiny_config() if args.quick else base_config(vision_model="", text_model="")
        self.verifier = Verifier.build(self.config, pretrained=False).to(self.device).eval()
        self.images = photos(args.chunk, seed=rank)
        self.templates = make_examples(args.chunk, 8, args.boxes, args.predicates, seed=rank)
        self.verify_batch = args.verify_batch

    def caption(self) -> None:
        self.captioner.generate_from_inputs(
            self.captioner.preprocess(self.images), list(range(len(self.images)))
        )
        self.synchronize()

    def verify(self) -> None:
        from sgpipe.models.pixels import resize_batch, to_tensor

        size = (self.config.image_size, self.config.image_size)
        for start in range(0, len(self.images), self.verify_batch):
            part = self.images[start : start + self.verify_batch]
            pixels = resize_batch([to_tensor(image) for image in part], size, "bilinear", self.device)
            examples = self.templates[start : start + self.verify_batch]
            for example, resized in zip(examples, pixels):
                example.pixels = resized
            self.verifier.score(examples)
        self.synchronize()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def peak_gib(self) -> float | None:
        return torch.cuda.max_memory_allocated() / 2**30 if self.device.type == "cuda" else None


def flat_worker(rank: int, args: argparse.Namespace, barrier, results) -> None:
    """A flat layout's worker: its own models, every stage in turn."""
    models = Models(args, rank)

    def one_chunk() -> None:
        models.caption()
        time.sleep(args.host_ms * args.chunk / 1000)  # decode, parse, tag, write
        models.verify()

    one_chunk()  # warm-up: kernels, allocator, label cache
    if models.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    barrier.wait()
    started = time.perf_counter()
    for _ in range(args.chunks):
        one_chunk()
    results.put((args.chunk * args.chunks, time.perf_counter() - started, models.peak_gib()))


def device_server(args: argparse.Namespace, requests, lanes, barrier, results) -> None:
    """A device process: one copy of each model, two threads serving the hosts' chunks."""
    import threading

    models = Models(args, rank=0)
    models.caption()
    models.verify()  # warm-up
    if models.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def serve() -> None:
        while (request := requests.get()) is not None:
            lane, kind = request
            if kind == "caption":
                models.caption()
            else:
                models.verify()
            lanes[lane].put(kind)

    threads = [threading.Thread(target=serve) for _ in range(DEVICE_THREADS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    for thread in threads:
        thread.join()
    results.put(("device", models.peak_gib()))


def host_worker(rank: int, args: argparse.Namespace, requests, lanes, barrier, results) -> None:
    """A shard process of the pools layout: two chunks in flight, each one's host work around its
    two trips to the device (decode before, parse and tag between, write after)."""
    import threading

    chunk_ms = args.host_ms * args.chunk / 1000
    before, between, after = 0.2 * chunk_ms, 0.65 * chunk_ms, 0.15 * chunk_ms

    def lane(index: int, chunks: int) -> None:
        replies = lanes[index]
        for _ in range(chunks):
            time.sleep(before)
            requests.put((index, "caption"))
            replies.get()
            time.sleep(between)
            requests.put((index, "verify"))
            replies.get()
            time.sleep(after)

    barrier.wait()
    started = time.perf_counter()
    own = [2 * rank, 2 * rank + 1]
    threads = [
        threading.Thread(target=lane, args=(i, n))
        for i, n in zip(own, (args.chunks - args.chunks // 2, args.chunks // 2))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put((args.chunk * args.chunks, time.perf_counter() - started, None))


def _collect(processes: list, results, expected: int, label: str) -> list:
    done = []
    while len(done) < expected:
        try:
            done.append(results.get(timeout=5))
        except queue.Empty:
            failed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if failed:  # out of memory, say: the others would wait at the barrier for ever
                for process in processes:
                    process.terminate()
                raise SystemExit(f"{label}: a process exited with {failed[0]}")
    return done


def _row(done: list, **fields: object) -> dict:
    """Every process's images over the slowest one's time."""
    images = sum(n for n, _, _ in done)
    seconds = max(s for _, s, _ in done)
    return {**fields, "images_per_s": round(images / seconds, 1)}


def measure(args: argparse.Namespace, processes: int, host_ms: float) -> dict:
    """The flat layout: `processes` workers, each with its own models."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    run_args = argparse.Namespace(**{**vars(args), "host_ms": host_ms})
    workers = [
        ctx.Process(target=flat_worker, args=(r, run_args, barrier, results)) for r in range(processes)
    ]
    for process in workers:
        process.start()
    done = _collect(workers, results, processes, f"flat, {processes} workers per GPU")
    for process in workers:
        process.join()
    row = _row(done, layout="flat", workers_per_gpu=processes, host_ms=host_ms)
    if done[0][2] is not None:
        row["peak_gib_per_worker"] = round(max(p for _, _, p in done), 1)
    return row


def measure_pools(args: argparse.Namespace, hosts: int) -> dict:
    """The pools layout: one device process with one copy of each model, `hosts` shard processes."""
    ctx = mp.get_context("spawn")
    barrier, results, requests = ctx.Barrier(hosts + 1), ctx.Queue(), ctx.Queue()
    lanes = [ctx.Queue() for _ in range(2 * hosts)]
    device = ctx.Process(target=device_server, args=(args, requests, lanes, barrier, results))
    shard_processes = [
        ctx.Process(target=host_worker, args=(r, args, requests, lanes, barrier, results))
        for r in range(hosts)
    ]
    for process in (device, *shard_processes):
        process.start()
    done = _collect([device, *shard_processes], results, hosts, f"pools, {hosts} shard processes")
    for _ in range(DEVICE_THREADS):
        requests.put(None)
    ((_, peak),) = _collect([device], results, 1, "the device process")
    for process in (device, *shard_processes):
        process.join()
    row = _row(done, layout="pools", shard_processes=hosts, host_ms=args.host_ms)
    if peak is not None:
        row["peak_gib_device"] = round(peak, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny models on CPU (smoke test)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--workers-per-gpu", type=int, nargs="+", default=[1, 3], help="flat layout")
    parser.add_argument("--shard-processes", type=int, nargs="+", default=[1, 3], help="pools layout")
    parser.add_argument("--layouts", nargs="+", default=["flat", "pools"], choices=["flat", "pools"])
    parser.add_argument("--chunk", type=int, default=128, help="images per chunk = caption batch")
    parser.add_argument("--chunks", type=int, default=4, help="timed chunks per process")
    parser.add_argument("--verify-batch", type=int, default=16)
    parser.add_argument("--boxes", type=int, default=20)
    parser.add_argument("--predicates", type=int, default=10)
    parser.add_argument("--host-ms", type=float, default=10.3, help="simulated host work per image")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.device = args.device or ("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    if args.quick:
        args.chunk, args.chunks, args.verify_batch, args.boxes, args.predicates = 4, 2, 2, 4, 3

    alone = measure(args, 1, 0.0)  # the GPU alone: the bound for this chunk and batch
    print(json.dumps(alone), flush=True)
    rows = []
    if "flat" in args.layouts:
        rows += [measure(args, processes, args.host_ms) for processes in args.workers_per_gpu]
    if "pools" in args.layouts:
        rows += [measure_pools(args, hosts) for hosts in args.shard_processes]
    for row in rows:
        row["gpu_share"] = round(row["images_per_s"] / alone["images_per_s"], 3)
        print(json.dumps(row), flush=True)
    summary = {
        "benchmark": "gpu_node",
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "quick": args.quick,
        "chunk": args.chunk,
        "verify_batch": args.verify_batch,
        "boxes": args.boxes,
        "predicates": args.predicates,
        "gpu_alone_images_per_s": alone["images_per_s"],
        "results": rows,
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
