"""One GPU shared by 1, 2 or 3 worker processes, each doing a worker's model work per chunk.

    python benchmarks/gpu_node.py --out node.json                       # real sizes, CUDA
    python benchmarks/gpu_node.py --quick                               # tiny models on CPU (smoke test)

The counterpart of bench_gpu_worker.py (real host work, simulated GPU): here the GPU work is real and
the host work is simulated. Each process builds BLIP-large (random weights, bf16) and the base
verifier (ResNet-50 + RoBERTa-base, random weights) on the same GPU, then loops over chunks as a
worker does: caption the chunk's images from PIL (sgpipe's path: uint8 tensors, resized and
normalised on the GPU; 10 captions of fixed length 20), sleep for the host work a worker does per
image (decode, parse, tag, write: --host-ms, 10.3 ms from sgpipe.estimate, the model stages' own
host work being real here), then verify (20 boxes, 10 predicates, every ordered pair). Images/s is
all processes' images over the slowest process's time, started together after a warm-up chunk.
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


def worker(rank: int, args: argparse.Namespace, barrier, results) -> None:
    from gpu_verifier import make_examples
    from transformers import BlipForConditionalGeneration

    from sgpipe.models.blip_shapes import blip_config
    from sgpipe.models.captioner import Captioner, Decoding
    from sgpipe.models.pixels import resize_batch, to_tensor
    from sgpipe.models.verifier import Verifier, base_config, tiny_config

    torch.manual_seed(rank)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # processes share the cores, as workers do
    dtype = "bfloat16" if device.type == "cuda" else "float32"
    decoding = Decoding(num_return_sequences=10, max_length=20, min_length=20)
    captioner = Captioner("random-blip-large-size", decoding, device=args.device, dtype=dtype)
    with torch.device(device):
        captioner.model = (
            BlipForConditionalGeneration(blip_config("tiny" if args.quick else "large"))
            .to(captioner.dtype)
            .eval()
        )
    captioner.processor = blip_processor(32 if args.quick else 384)
    config = tiny_config() if args.quick else base_config(vision_model="", text_model="")
    verifier = Verifier.build(config, pretrained=False).to(device).eval()
    images = photos(args.chunk, seed=rank)
    templates = make_examples(args.chunk, 8, args.boxes, args.predicates, seed=rank)

    def one_chunk() -> None:
        captioner.generate_from_inputs(captioner.preprocess(images), list(range(len(images))))
        time.sleep(args.host_ms * len(images) / 1000)  # decode, parse, tag, write
        size = (config.image_size, config.image_size)
        for start in range(0, len(images), args.verify_batch):
            part = images[start : start + args.verify_batch]
            pixels = resize_batch([to_tensor(image) for image in part], size, "bilinear", device)
            examples = templates[start : start + args.verify_batch]
            for example, resized in zip(examples, pixels):
                example.pixels = resized
            verifier.score(examples)

    one_chunk()  # warm-up: kernels, allocator, label cache
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    barrier.wait()
    started = time.perf_counter()
    for _ in range(args.chunks):
        one_chunk()
    if device.type == "cuda":
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    results.put((args.chunk * args.chunks, time.perf_counter() - started, peak))


def measure(args: argparse.Namespace, processes: int, host_ms: float) -> dict:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    run_args = argparse.Namespace(**{**vars(args), "host_ms": host_ms})
    workers = [ctx.Process(target=worker, args=(r, run_args, barrier, results)) for r in range(processes)]
    for process in workers:
        process.start()
    done = []
    while len(done) < processes:
        try:
            done.append(results.get(timeout=5))
        except queue.Empty:
            failed = [p.exitcode for p in workers if p.exitcode not in (None, 0)]
            if failed:  # out of memory, say: the others would wait at the barrier for ever
                for process in workers:
                    process.terminate()
                raise SystemExit(f"{processes} workers per GPU: a worker exited with {failed[0]}")
    for process in workers:
        process.join()
    images = sum(n for n, _, _ in done)
    seconds = max(s for _, s, _ in done)
    row = {"workers_per_gpu": processes, "host_ms": host_ms, "images_per_s": round(images / seconds, 1)}
    if done[0][2] is not None:
        row["peak_gib_per_worker"] = round(max(p for _, _, p in done), 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny models on CPU (smoke test)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--workers-per-gpu", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--chunk", type=int, default=64, help="images per chunk = caption batch")
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

    rows = [measure(args, 1, 0.0)]  # the GPU alone: the bound for this chunk and batch
    print(json.dumps(rows[-1]), flush=True)
    for processes in args.workers_per_gpu:
        rows.append(measure(args, processes, args.host_ms))
        print(json.dumps(rows[-1]), flush=True)
    summary = {
        "benchmark": "gpu_node",
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "quick": args.quick,
        "chunk": args.chunk,
        "verify_batch": args.verify_batch,
        "boxes": args.boxes,
        "predicates": args.predicates,
        "gpu_alone_images_per_s": rows[0]["images_per_s"],
        "results": rows[1:],
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
