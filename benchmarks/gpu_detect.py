"""Detect-stage throughput on one GPU: Grounding DINO (tiny and base shapes) and OWLv2 base, bf16.

    python benchmarks/gpu_detect.py                       # all three models, CUDA
    python benchmarks/gpu_detect.py --models owlv2-base --batch-sizes 4,8,16 --out detect.json
    python benchmarks/gpu_detect.py --quick               # tiny models on CPU (smoke test)

Needs only torch, transformers, numpy and PIL: the models are built from configs with random weights
in the released checkpoints' shapes (IDEA-Research/grounding-dino-tiny: Swin-T + BERT-base;
grounding-dino-base: Swin-B at 384 px windows; google/owlv2-base-patch16-ensemble: ViT-B/16 at
960 px), so no download. Their processors are the released ones' (image sizes, normalisation) with a
synthetic vocabulary. Each image is a random 640 x 480 picture (COCO's usual size) asked about
`--phrases` phrases, as the detect stage asks about an image's triplet entities.

Two timings per model and batch size:
  model     the forward pass alone, on inputs already on the device (what the GPU can do);
  stage     `ZeroShotDetector.detect` as the detect stage calls it: the processor on the host
            (resize, normalise, tokenise), the forward pass, scores to detections (thresholds, NMS).
Random weights make the detections arbitrary, so thresholds are 0 and max_boxes 50: post-processing
handles the most boxes it ever would. bf16 on CUDA (the stage's default), plus fp32 at the first batch
size for reference.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sgpipe.models.detections import Thresholds  # noqa: E402 - numpy only
from sgpipe.models.detector import ZeroShotDetector  # noqa: E402 - torch and transformers only

WORDS = [
    "man", "woman", "person", "dog", "cat", "horse", "bicycle", "car", "table", "chair", "kite", "frisbee",
    "skateboard", "surfboard", "bench", "tree", "street", "grass", "fire", "hydrant", "pizza", "plate",
]
MODELS = ("grounding-dino-tiny", "grounding-dino-base", "owlv2-base")


def bert_tokenizer(folder: Path):
    """A BERT tokenizer of BERT-base-uncased's size and special ids (Grounding DINO reads 101, 102, 1012)."""
    from transformers import BertTokenizerFast

    special = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1012: ".", 1029: "?"}
    tokens = [special.get(i, f"[unused{i}]") for i in range(30522 - len(WORDS))] + WORDS
    return BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True)


def clip_tokenizer(folder: Path, vocab_size: int):
    """A character-level CLIP tokenizer padded to CLIP's vocabulary size (queries are 16 tokens anyway)."""
    import string

    from transformers import CLIPTokenizer

    chars = list(string.ascii_lowercase + string.digits + ".,'-")
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars])}
    while len(vocab) < vocab_size - 3:
        vocab[f"<unused{len(vocab)}>"] = len(vocab)
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1, "!": len(vocab) + 2})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="!", model_max_length=16
    )


def grounding_dino(name: str, quick: bool, folder: Path):
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    if quick:
        backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1],
                              num_heads=[1, 1, 2, 2], window_size=4, out_indices=[2, 3, 4])
        config = GroundingDinoConfig(
            backbone_config=backbone, num_queries=20, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32,
            decoder_ffn_dim=32, d_model=32, encoder_attention_heads=2, decoder_attention_heads=2,
            encoder_n_points=2, decoder_n_points=2,
            text_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 64},
        )
        size = {"shortest_edge": 64, "longest_edge": 96}
    else:
        base = name.endswith("base")
        backbone = SwinConfig(
            image_size=384 if base else 224, embed_dim=128 if base else 96,
            depths=[2, 2, 18, 2] if base else [2, 2, 6, 2],
            num_heads=[4, 8, 16, 32] if base else [3, 6, 12, 24],
            window_size=12 if base else 7, out_indices=[2, 3, 4],
        )
        config = GroundingDinoConfig(backbone_config=backbone)  # BERT-base text, 900 queries, 6 + 6 layers
        size = {"shortest_edge": 800, "longest_edge": 1333}
    images = GroundingDinoImageProcessor(size=size)  # torchvision's backend where installed, else PIL's
    processor = GroundingDinoProcessor(image_processor=images, tokenizer=bert_tokenizer(folder))
    return GroundingDinoForObjectDetection(config), processor


def owlv2(quick: bool, folder: Path):
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    if quick:
        config = Owlv2Config(
            text_config={"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64,
                         "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 16},
            vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                           "num_attention_heads": 2, "image_size": 64, "patch_size": 16},
            projection_dim=32,
        )
    else:  # google/owlv2-base-patch16-ensemble
        config = Owlv2Config(vision_config={"image_size": 960, "patch_size": 16})
    side = config.vision_config.image_size
    images = Owlv2ImageProcessor(size={"height": side, "width": side})
    tokenizer = clip_tokenizer(folder, config.text_config.vocab_size)
    return Owlv2ForObjectDetection(config), Owlv2Processor(image_processor=images, tokenizer=tokenizer)


def build(name: str, quick: bool, folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    return owlv2(quick, folder) if name.startswith("owlv2") else grounding_dino(name, quick, folder)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(run, repeats: int, device: str) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    sync(device)
    return (time.perf_counter() - start) / repeats


def measure(detector: ZeroShotDetector, batch_size: int, args, rng: np.random.Generator) -> dict:
    from PIL import Image

    side = (64, 48) if args.quick else (640, 480)
    pixels = [rng.integers(0, 255, (side[1], side[0], 3), dtype=np.uint8) for _ in range(batch_size)]
    images = [Image.fromarray(p) for p in pixels]
    phrases = [[WORDS[(i + k) % len(WORDS)] for k in range(args.phrases)] for i in range(batch_size)]
    rows = detector.rows(phrases)
    row = {"batch_size": batch_size, "dtype": str(detector.dtype).removeprefix("torch."), "rows": len(rows)}
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        inputs, _ = detector.prepare([images[r.image] for r in rows], rows)

        def forward():
            with torch.inference_mode():
                detector.model(**inputs)

        for _ in range(args.warmup):
            forward()
            detector.detect(images, phrases)
        model_s = timed(forward, args.batches, args.device)
        stage_s = timed(lambda: detector.detect(images, phrases), args.batches, args.device)
    except torch.OutOfMemoryError:
        row["error"] = "out of memory"
        return row
    row.update(
        model_images_per_s=round(batch_size / model_s, 2),
        stage_images_per_s=round(batch_size / stage_s, 2),
        host_ms_per_image=round(1000 * max(stage_s - model_s, 0.0) / batch_size, 2),
    )
    if args.device == "cuda":
        row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return row


def run_model(name: str, args, folder: Path) -> dict:
    torch.manual_seed(0)
    with torch.device(args.device):  # initialised on the device: much faster at these sizes
        model, processor = build(name, args.quick, folder / name)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    results = []
    for dtype in ("float32", "bfloat16") if args.device == "cuda" else ("float32",):
        detector = ZeroShotDetector(name, Thresholds(0.0, 0.0, 0.5, 50), batch_size=10**6, device=args.device,
                                    dtype=dtype)
        detector.model, detector.processor = model.to(detector.dtype), processor
        rng = np.random.default_rng(0)
        for size in args.sizes[:1] if dtype == "float32" and args.device == "cuda" else args.sizes:
            results.append(measure(detector, size, args, rng))
            if "error" in results[-1]:
                break
    del model
    if args.device == "cuda":
        torch.cuda.empty_cache()
    return {"model": name, "parameters_m": round(params / 1e6, 1), "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny models on CPU, a few batches (smoke test)")
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    parser.add_argument("--models", default=",".join(MODELS), help=f"any of {', '.join(MODELS)}")
    parser.add_argument("--batch-sizes", default=None, help="images per forward, e.g. 1,4,8,16")
    parser.add_argument("--phrases", type=int, default=8, help="phrases asked about each image")
    parser.add_argument("--batches", type=int, default=None, help="timed batches per setting")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the JSON summary here")
    args = parser.parse_args()
    args.device = args.device or ("cpu" if args.quick or not torch.cuda.is_available() else "cuda")
    args.batches = args.batches or (1 if args.quick else 5)
    args.sizes = [int(s) for s in (args.batch_sizes or ("1,2" if args.quick else "1,4,8,16")).split(",")]
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")

    import tempfile

    from transformers import __version__ as transformers_version

    with tempfile.TemporaryDirectory(prefix="gpu-detect-") as folder:
        models = [run_model(name, args, Path(folder)) for name in names]
    summary = {
        "benchmark": "detect",
        "quick": args.quick,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": transformers_version,
        "phrases_per_image": args.phrases,
        "models": models,
    }
    print(json.dumps(summary, indent=2))
    print()
    print("{:22} {:9} {:>5} {:>5} {:>10} {:>10} {:>8} {:>6}".format(
        "model", "dtype", "batch", "rows", "model i/s", "stage i/s", "host ms", "GiB"))
    for entry in models:
        for r in entry["results"]:
            if "error" in r:
                print(f"{entry['model']:22} {r['dtype']:9} {r['batch_size']:>5} {r['error']}")
                continue
            print(f"{entry['model']:22} {r['dtype']:9} {r['batch_size']:>5} {r['rows']:>5} "
                  f"{r['model_images_per_s']:>10} {r['stage_images_per_s']:>10} {r['host_ms_per_image']:>8} "
                  f"{r.get('peak_memory_gib', '-'):>6}")
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
