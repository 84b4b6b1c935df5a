"""`sgpipe demo`: the whole loop offline on CPU, on a synthetic world whose truth is known.

synth (train + val worlds) -> convert the training world's true relations into shards -> train the small
verifier for a fixed number of steps -> run the full pipeline on the validation world (captions from its file,
hallucinated ones included) -> relation precision/recall before and after verification.

Offline there are no captioner weights, so the captions come from the world's captions file, and the
demo says so; the caption stage itself is exercised by the tests with a tiny BLIP built from a config.

Training runs a fixed number of steps, not a time budget, on one intra-op thread: the same command gives
the same weights and figures on a busy machine and an idle one (only the time differs). DEMO_TRAIN_STEPS
is sized so the whole demo takes about six minutes on two idle cores (docs/BENCHMARKS.md: the measurement).

Each step is a function of its own (`demo_worlds`, `demo_training_shards`, `train_demo_verifier`,
`run_candidates`, `verify_candidates`, `truth_figures`), so other recipes can be measured on the same world
with the same verifier (benchmarks/bench_recipes_synth.py).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from sgpipe.config import load_config
from sgpipe.errors import SgpipeError
from sgpipe.models.device import one_thread
from sgpipe.run import RunOptions, run_pipeline
from sgpipe.shards import iter_shard_samples

log = logging.getLogger(__name__)
RECIPES = Path(__file__).resolve().parents[1] / "pipelines"
VAL_FIRST_ID = 1_000_001
DEMO_TRAIN_STEPS = 450


def _recipe(name: str) -> Path:
    path = RECIPES / name
    if not path.is_file():
        raise SgpipeError(
            f"recipe {path} not found: run the demo from a checkout of sgpipe (pip install -e .)"
        )
    return path


def _say(message: str) -> None:
    print(message, flush=True)


def _format(metrics: dict) -> str:
    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    return (
        f"precision {number(metrics['precision'])}  recall of stated {number(metrics['recall_stated'])}  "
        f"hallucinations passed {number(metrics['hallucinations_predicted'])}  "
        f"({metrics['predicted']} relations, {metrics['true_positives']} true)"
    )


def demo_worlds(out: Path, n_images: int = 48, n_train_images: int = 1000) -> tuple[Path, Path]:
    """The demo's training world (seed 1) and validation world (seed 2, ids from VAL_FIRST_ID) under `out`."""
    from sgpipe.synth.world import generate_world

    train_world, val_world = Path(out) / "world-train", Path(out) / "world-val"
    generate_world(train_world, n_images=n_train_images, seed=1)
    generate_world(val_world, n_images=n_images, seed=2, first_image_id=VAL_FIRST_ID)
    return train_world, val_world


def demo_training_shards(out: Path, train_world: Path) -> Path:
    """OUT/train-shards: the training world's true relations and its captions' false ones."""
    from sgpipe.tools.convert_synth import convert_synth

    shards = Path(out) / "train-shards"
    shutil.rmtree(shards, ignore_errors=True)  # an earlier demo's: convert refuses to mix
    convert_synth(train_world, shards, samples_per_shard=50)
    return shards


def train_demo_verifier(
    out: Path, train_shards: Path, train_steps: int = DEMO_TRAIN_STEPS, seed: int = 0
) -> Path:
    """The small verifier trained on `train_shards` for `train_steps` steps on one thread, in OUT/verifier;
    returns its final checkpoint."""
    from sgpipe.train.config import load_train_config
    from sgpipe.train.loop import train

    train_config = load_train_config(
        _recipe("train_small.yaml"),
        [
            f"data.train={train_shards}",
            "data.eval=",
            f"run.out={Path(out) / 'verifier'}",
            "optim.max_seconds=0",  # a time budget would make the figures depend on the machine's load
            f"optim.max_steps={train_steps}",
            f"run.seed={seed}",
            "run.resume=false",  # a folder left by an earlier demo must not change this one's training
        ],
    )
    with one_thread():  # the same weights and figures on every run
        return train(train_config)


def run_candidates(world: Path, out: Path, overrides: Sequence[str] = ()) -> str:
    """The demo recipe with `overrides` on `world`, its captions from the world's file and no verifier:
    parse + tag candidates written to `out`; returns the run's summary."""
    world = Path(world)
    config = load_config(
        _recipe("demo.yaml"),
        [
            f"source.instances={world / 'annotations' / 'instances.json'}",
            f"source.images={world / 'images'}",
            f"source.captions={world / 'annotations' / 'captions.json'}",
            f"output.dir={out}",
            *overrides,
        ],
    )
    return run_pipeline(config, RunOptions(progress=False))


def verify_candidates(candidates: Path, checkpoint: Path, out: Path, overrides: Sequence[str] = ()) -> str:
    """`sgpipe reverify` of the candidates with the verifier on one thread (`overrides`: verify.* keys)."""
    from sgpipe.run.reverify import reverify

    with one_thread():  # the same weights and figures on every run
        return reverify(candidates, checkpoint, out, list(overrides))


def truth_figures(world: Path, candidates: Path, shards: Path) -> tuple[dict, dict]:
    """Every candidate relation, then the verified shards' kept ones, against the world's truth."""
    from sgpipe.synth.truth import evaluate_relations, load_truth

    truth = load_truth(world)
    before = evaluate_relations(
        (s.record for s in iter_shard_samples(str(candidates))), truth, kept_only=False
    )
    after = evaluate_relations((s.record for s in iter_shard_samples(str(shards))), truth, kept_only=True)
    return before, after


def run_demo(
    out: Path,
    n_images: int = 48,
    n_train_images: int = 1000,
    train_steps: int = DEMO_TRAIN_STEPS,
    seed: int = 0,
) -> str:
    out = Path(out)
    _say(f"[1/5] synthetic worlds: {n_train_images} training images, {n_images} validation images")
    train_world, val_world = demo_worlds(out, n_images, n_train_images)
    _say("[2/5] training shards from the training world's true relations (and its captions' false ones)")
    train_shards = demo_training_shards(out, train_world)
    _say(f"[3/5] training the small verifier for {train_steps} steps on CPU (seed {seed})")
    final = train_demo_verifier(out, train_shards, train_steps, seed)
    _say(
        "[4/5] the pipeline on the validation world: captions from its file (offline demo: no captioner "
        "weights; the file includes hallucinated captions, as a captioner would produce) -> parse -> tag -> "
        "candidate shards; then `sgpipe reverify` scores every candidate with the trained verifier"
    )
    candidates, shards = out / "candidates", out / "shards"
    _say("      " + run_candidates(val_world, candidates))
    _say("      " + verify_candidates(candidates, final, shards))
    _say("[5/5] relations against the synthetic truth")
    before, after = truth_figures(val_world, candidates, shards)
    lines = [
        f"candidates (parse + tag, unverified): {_format(before)}",
        f"kept by the verifier (>= keep_threshold): {_format(after)}",
        f"shards: {shards}   inspect them: sgpipe inspect {shards} --render {out / 'renders'}",
    ]
    return "\n".join(lines)
