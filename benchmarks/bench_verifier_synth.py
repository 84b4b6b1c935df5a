"""The verifier on the synthetic world: train the small config on CPU for a fixed time budget, then
measure on a held-out world what the verify stage would do to the captions' candidate relations.

    python benchmarks/bench_verifier_synth.py --work /tmp/bench-verifier --seconds 300

Candidates are the held-out captions' statements, grounded on the world's own boxes (the tag
stage's job, done here by the world's annotation ids): the true statements plus the hallucinated
ones (default hallucination rate 0.3). Reported: ROC-AUC true vs hallucinated; precision/recall
of the candidates kept at the keep threshold (0.20); and, on the pixel-only predicates (in front
of / behind, decided by draw order alone), ROC-AUC with real images and with blanked images.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

PIXEL_ONLY = ("in front of", "behind")


def world_candidates(world: Path) -> list[dict]:
    """One record per held-out image: its boxes and its captions' unique statements."""
    ann = world / "annotations"
    instances = json.loads((ann / "instances.json").read_text())
    names = {c["id"]: c["name"] for c in instances["categories"]}
    boxes = defaultdict(list)
    for a in instances["annotations"]:
        boxes[a["image_id"]].append({"id": a["id"], "category": names[a["category_id"]], "bbox": a["bbox"]})
    statements = defaultdict(dict)
    for s in json.loads((ann / "statements.json").read_text()):
        statements[s["image_id"]][(s["subject_id"], s["object_id"], s["predicate"])] = s["holds"]
    records = []
    for image in instances["images"]:
        relations = [
            {"subject_id": s, "object_id": o, "predicate": p, "confidence": 1.0 if holds else 0.0}
            for (s, o, p), holds in sorted(statements[image["id"]].items())
        ]
        records.append(
            {
                "key": f"synth-{image['id']:012d}",
                "width": image["width"],
                "height": image["height"],
                "objects": boxes[image["id"]],
                "relations": relations,
                "file": str(world / "images" / image["file_name"]),
            }
        )
    return records


def evaluate_world(checkpoint: Path, world: Path, keep_threshold: float, blank: bool) -> dict:
    from sgpipe.models.verifier import Verifier
    from sgpipe.shards import ShardSample
    from sgpipe.train.evaluate import roc_auc, score_shards, threshold_report

    model = Verifier.from_pretrained(checkpoint)
    samples = [ShardSample(r["key"], r, Path(r["file"]).read_bytes(), "jpg") for r in world_candidates(world)]
    rows, _ = score_shards(model, samples, model.config.image_size, blank=blank, batch_size=16)
    pixel = [r for r in rows if r.predicate in PIXEL_ONLY]
    other = [r for r in rows if r.predicate not in PIXEL_ONLY]
    return {
        "auc": roc_auc([r.score for r in rows], [r.truth for r in rows]),
        **threshold_report(rows, keep_threshold),
        "pixel_only_candidates": len(pixel),
        "pixel_only_auc": roc_auc([r.score for r in pixel], [r.truth for r in pixel]),
        "geometric_auc": roc_auc([r.score for r in other], [r.truth for r in other]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-verifier"))
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--eval-images", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=300.0, help="training time budget")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--recipe", type=Path, default=Path(__file__).parent.parent / "pipelines" / "train_small.yaml"
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="training recipe override"
    )
    parser.add_argument("--run", default="run", help="training folder name under --work")
    parser.add_argument("--prepare-only", action="store_true", help="write the worlds and shards, then stop")
    parser.add_argument("--output", type=Path, default=None, help="write the results JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from sgpipe.synth.world import generate_world
    from sgpipe.tools.convert import convert_synth
    from sgpipe.train.config import load_train_config
    from sgpipe.train.loop import train

    if args.threads:
        torch.set_num_threads(args.threads)
    work = args.work
    train_world, eval_world = work / "train_world", work / "eval_world"
    if not (train_world / "annotations" / "statements.json").is_file():
        print(
            generate_world(train_world, n_images=args.train_images, seed=1, first_image_id=1), file=sys.stderr
        )
    if not (eval_world / "annotations" / "statements.json").is_file():
        print(
            generate_world(eval_world, n_images=args.eval_images, seed=2, first_image_id=10_000_000),
            file=sys.stderr,
        )
    if not (work / "train_shards" / "stats.json").is_file():
        print(convert_synth(train_world, work / "train_shards"), file=sys.stderr)
    if args.prepare_only:
        return
    config = load_train_config(
        args.recipe,
        [
            f"data.train={work / 'train_shards'}",
            "data.eval=",
            f"run.out={work / args.run}",
            "run.resume=false",
            f"optim.max_seconds={args.seconds}",
            "run.device=cpu",
            *args.overrides,
        ],
    )
    shutil.rmtree(work / args.run, ignore_errors=True)
    started = time.perf_counter()
    checkpoint = train(config)
    train_seconds = time.perf_counter() - started
    steps = [
        json.loads(x) for x in (work / args.run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x
    ]
    real = evaluate_world(checkpoint, eval_world, config.run.keep_threshold, blank=False)
    blank = evaluate_world(checkpoint, eval_world, config.run.keep_threshold, blank=True)
    results = {
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "train_seconds": round(train_seconds, 1),  # setup (model build, vocabulary scan) and saving included
        "train_loop_seconds": round(steps[-1]["elapsed_s"], 1) if steps else 0.0,
        "steps": steps[-1]["step"] if steps else 0,
        "train_samples": (steps[-1]["step"] if steps else 0) * config.data.batch_size,
        "final_loss": steps[-1]["loss"] if steps else None,
        "preset": config.model.preset,
        "overrides": args.overrides,
        "keep_threshold": config.run.keep_threshold,
        "held_out": real,
        "held_out_blanked_images": blank,
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
