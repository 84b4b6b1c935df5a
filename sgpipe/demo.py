"""`sgpipe demo`: the whole loop offline on CPU, on a synthetic world whose truth is known.

synth (train + val worlds) -> convert the training world's true relations into shards -> train the small
verifier for a fixed number of steps -> run the full pipeline on the validation world (captions from its file,
hallucinated ones included) -> relation precision/recall before and after verification.

Offline there are no captioner weights, so the captions come from the world's captions file, and the
demo says so; the caption stage itself is exercised by the tests with a tiny BLIP built from a config.

Training runs a fixed number of steps, not a time budget, on one intra-op thread: the same command gives
the same weights and figures on a busy machine and an idle one (only the time differs). DEMO_TRAIN_STEPS
is sized so the whole demo takes about six minutes on two idle cores (docs/BENCHMARKS.md: the measurement).
"""

from __future__ import annotations

import logging
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


def run_demo(
    out: Path,
    n_images: int = 48,
    n_train_images: int = 1000,
    train_steps: int = DEMO_TRAIN_STEPS,
    seed: int = 0,
) -> str:
    from sgpipe.run.reverify import reverify
    from sgpipe.synth.truth import evaluate_relations, load_truth
    from sgpipe.synth.world import generate_world
    from sgpipe.tools.convert_synth import convert_synth
    from sgpipe.train.config import load_train_config
    from sgpipe.train.loop import train

    out = Path(out)
    train_world, val_world = out / "world-train", out / "world-val"
    _say(f"[1/5] synthetic worlds: {n_train_images} training images, {n_images} validation images")
    generate_world(train_world, n_images=n_train_images, seed=1)
    generate_world(val_world, n_images=n_images, seed=2, first_image_id=VAL_FIRST_ID)

    _say("[2/5] training shards from the training world's true relations (and its captions' false ones)")
    convert_synth(train_world, out / "train-shards", samples_per_shard=50)

    _say(f"[3/5] training the small verifier for {train_steps} steps on CPU (seed {seed})")
    checkpoint = out / "verifier"
    train_config = load_train_config(
        _recipe("train_small.yaml"),
        [
            f"data.train={out / 'train-shards'}",
            "data.eval=",
            f"run.out={checkpoint}",
            "optim.max_seconds=0",  # a time budget would make the figures depend on the machine's load
            f"optim.max_steps={train_steps}",
            f"run.seed={seed}",
            "run.resume=false",  # a folder left by an earlier demo must not change this one's training
        ],
    )
    with one_thread():  # the same weights and figures on every run
        final = train(train_config)

    _say(
        "[4/5] the pipeline on the validation world: captions from its file (offline demo: no captioner "
        "weights; the file includes hallucinated captions, as a captioner would produce) -> parse -> tag -> "
        "candidate shards; then `sgpipe reverify` scores every candidate with the trained verifier"
    )
    candidates, shards = out / "candidates", out / "shards"
    unverified = load_config(
        _recipe("demo.yaml"),
        [
            f"source.instances={val_world / 'annotations' / 'instances.json'}",
            f"source.images={val_world / 'images'}",
            f"source.captions={val_world / 'annotations' / 'captions.json'}",
            f"output.dir={candidates}",
        ],
    )
    _say("      " + run_pipeline(unverified, RunOptions(progress=False)))
    with one_thread():  # the same weights and figures on every run
        _say("      " + reverify(candidates, final, shards))

    _say("[5/5] relations against the synthetic truth")
    truth = load_truth(val_world)
    before = evaluate_relations(
        (s.record for s in iter_shard_samples(str(candidates))), truth, kept_only=False
    )
    after = evaluate_relations((s.record for s in iter_shard_samples(str(shards))), truth, kept_only=True)
    lines = [
        f"candidates (parse + tag, unverified): {_format(before)}",
        f"kept by the verifier (>= keep_threshold): {_format(after)}",
        f"shards: {shards}   inspect them: sgpipe inspect {shards} --render {out / 'renders'}",
    ]
    return "\n".join(lines)
