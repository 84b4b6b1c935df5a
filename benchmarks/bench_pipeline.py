"""Pipeline overhead: the whole sgpipe pipeline with tiny models against a plain single-process loop.

    python benchmarks/bench_pipeline.py --images 256

Both sides do the same work on the same synthetic world: decode, caption (a tiny BLIP, 10 captions per
image, plus the world's own captions), parse (spaCy), tag, verify (a tiny verifier), and write a tar of
records. The plain loop calls the same stage objects in the same chunks and writes one tarfile; sgpipe adds
planning, per-shard parquet/stats and atomic commits (and Ray, for more than one worker). Forward passes
cost almost nothing, so the difference is the framework's overhead. Reported per core (one worker) and
with one worker per core.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def build_world(work: Path, n_images: int) -> dict[str, str]:
    from sgpipe.models.verifier import Verifier, tiny_config
    from sgpipe.synth.world import generate_world
    from tests.helpers.tiny_models import build_tiny_blip

    generate_world(work / "world", n_images=n_images, seed=3)
    blip = build_tiny_blip(work / "blip")
    verifier = Verifier.build(tiny_config()).save_pretrained(work / "verifier")
    return {"blip": str(blip), "verifier": str(verifier), "world": str(work / "world")}


def pipeline_config(assets: dict[str, str], out: Path, workers: int):
    from sgpipe.config import build_config

    world = Path(assets["world"])
    return build_config(
        {
            "source": {
                "name": "synth",
                "instances": str(world / "annotations/instances.json"),
                "images": str(world / "images"),
                "captions": str(world / "annotations/captions.json"),
            },
            "caption": {"enabled": True, "model": assets["blip"], "captions_per_image": 10, "batch_size": 16},
            "verify": {"enabled": True, "checkpoint": assets["verifier"]},
            "output": {"dir": str(out), "samples_per_shard": 64},
            "run": {"workers": workers, "decode_threads": 2},
        }
    )


def plain_loop(config) -> tuple[float, float, dict[str, float]]:
    """The same stages over the same chunks, one process, one tarfile: no plan, no Ray, no commit protocol."""
    from sgpipe.pipeline import build_stages
    from sgpipe.run.sources import entry_to_sample
    from sgpipe.source.coco_captions import load_captions
    from sgpipe.source.coco import load_coco_entries

    import torch

    torch.set_num_threads(1)  # one core, as one sgpipe worker has
    started = time.perf_counter()
    entries, categories, _ = load_coco_entries(config.source.instances, load_captions(config.source.captions))
    stages = build_stages(config, categories)
    for stage in stages:
        stage.setup()
    provenance = {"sgpipe": "plain", "config_hash": "", "models": {}}
    out = Path(config.output.dir)
    out.mkdir(parents=True)
    warm_started = None
    with tarfile.open(out / "plain.tar", "w") as tar:
        for start in range(0, len(entries), 64):
            if start == 64:
                warm_started = time.perf_counter()  # after the first chunk: models loaded, caches warm
            chunk = [entry_to_sample(e, config.source.name) for e in entries[start : start + 64]]
            for stage in stages:
                stage(chunk)
            for sample in chunk:
                for name, data in (
                    (f"{sample.key}.jpg", sample.image_bytes or b""),
                    (f"{sample.key}.json", json.dumps(sample.to_record(provenance)).encode()),
                ):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                sample.image = None
    ended = time.perf_counter()
    for stage in stages:
        stage.teardown()
    return ended - started, ended - warm_started, {s.name: round(s.seconds, 2) for s in stages}


def steady_seconds(out: Path) -> float:
    """Worker time of every shard but the first (which pays for imports and model loading)."""
    from sgpipe.output.writer import read_shard_stats

    return sum(s["timings"]["wall_seconds"] for s in read_shard_stats(out)[1:])


def sgpipe_run(config) -> tuple[float, dict]:
    from sgpipe.run import RunOptions, run_pipeline

    started = time.perf_counter()
    run_pipeline(config, RunOptions(progress=False))
    wall = time.perf_counter() - started
    stats = json.loads((Path(config.output.dir) / "stats.json").read_text())
    return wall, stats


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sgpipe-pipeline-bench-"))
    assets = build_world(work, args.images)
    n = args.images

    plain_seconds, plain_steady, plain_stages = plain_loop(pipeline_config(assets, work / "plain", 1))
    one_wall, one_stats = sgpipe_run(pipeline_config(assets, work / "one", 1))
    cores = os.cpu_count() or 1
    many_wall, _ = sgpipe_run(pipeline_config(assets, work / "many", cores))
    one_steady = steady_seconds(work / "one")
    warm = n - 64
    result = {
        "images": n,
        "plain_loop_images_s": round(n / plain_seconds, 2),
        "plain_loop_images_s_steady": round(warm / plain_steady, 2),
        "sgpipe_1_worker_images_s_wall": round(n / one_wall, 2),
        "sgpipe_1_worker_images_s_steady": round(warm / one_steady, 2),
        f"sgpipe_{cores}_workers_images_s_wall": round(n / many_wall, 2),
        "ratio_per_core_wall": round(plain_seconds / one_wall, 3),
        "ratio_per_core_steady": round(plain_steady / one_steady, 3),
        "plain_stage_seconds": plain_stages,
        "sgpipe_stage_seconds": {k: v["seconds"] for k, v in one_stats["throughput"]["stages"].items()},
        "note": "wall: end to end, planning, model loads (and for several workers Ray's start-up) included; "
        "one worker runs in this process (run.executor auto); steady: every 64-image shard (chunk) after "
        "the first, from the workers' _stats.json",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
