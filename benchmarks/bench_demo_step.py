"""CPU cost of one training step of the demo's verifier: what sizes `sgpipe demo`'s fixed step count.

    python benchmarks/bench_demo_step.py --work /tmp/demo-step --steps 45                     # one thread
    python benchmarks/bench_demo_step.py --work /tmp/demo-step --steps 45 --loader-workers 1  # as the demo

Builds the demo's 1,000-image training world (unless --work already holds it), then trains the small
verifier with one torch thread and the data loaded in the same thread, timing each optimizer step with
`time.thread_time()`: the CPU seconds of this thread alone. Unlike wall time, that figure barely moves
when other processes share the cores (only cache sharing inflates it a little), so it stands for a step's
wall time on an idle core and can be measured on a busy machine. The first 5 steps (warm-up) are dropped.
With `--loader-workers 1` (the demo's setting) the data are prepared in another process, on the other
core of a 2-core machine, and the figure is the model's share of a step alone.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=45)
    parser.add_argument("--loader-workers", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from sgpipe.synth.world import generate_world
    from sgpipe.tools.convert_synth import convert_synth
    from sgpipe.train.config import load_train_config
    from sgpipe.train.loop import train

    shards = args.work / "train-shards"
    if not shards.is_dir():
        generate_world(args.work / "world-train", n_images=1000, seed=1)
        convert_synth(args.work / "world-train", shards, samples_per_shard=50)
    stamps: list[tuple[float, float]] = []
    step = torch.optim.AdamW.step

    def timed_step(self, *a, **k):  # type: ignore[no-untyped-def]
        result = step(self, *a, **k)
        stamps.append((time.thread_time(), time.perf_counter()))
        return result

    torch.optim.AdamW.step = timed_step  # type: ignore[method-assign]
    recipe = Path(__file__).resolve().parents[1] / "pipelines" / "train_small.yaml"
    train(
        load_train_config(
            recipe,
            [
                f"data.train={shards}",
                "data.eval=",
                f"run.out={args.work / 'run'}",
                "run.resume=false",
                "optim.max_seconds=0",
                f"optim.max_steps={args.steps}",
                f"data.num_workers={args.loader_workers}",
                "run.checkpoint_every=0",
            ],
        )
    )
    warm = stamps[5:]  # the first steps pay for warm-up
    cpu = sorted(b[0] - a[0] for a, b in zip(warm, warm[1:]))
    wall = [b[1] - a[1] for a, b in zip(warm, warm[1:])]
    if not cpu:
        raise SystemExit("too few steps: use --steps 10 or more")
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    print(
        json.dumps(
            {
                "steps_timed": len(cpu),
                "cpu_s_per_step_median": round(cpu[len(cpu) // 2], 3),
                "cpu_s_per_step_mean": round(sum(cpu) / len(cpu), 3),
                "cpu_s_per_step_min": round(cpu[0], 3),
                "wall_s_per_step_mean": round(sum(wall) / len(wall), 3),
                "loadavg": load,
            }
        )
    )


if __name__ == "__main__":
    main()
