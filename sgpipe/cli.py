"""The `sgpipe` command line: parses arguments, then calls config, the run package and tools.

Heavy modules are imported inside each command so `sgpipe --help` stays instant.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from sgpipe.cli_convert import convert_app
from sgpipe.cli_support import CORPUS_HELP, SET_HELP, storage_from, storage_option, user_errors

app = typer.Typer(
    help=(
        "Turn object-detection datasets (COCO, Objects365) into grounded scene-graph corpora: "
        "caption -> parse -> tag -> verify -> WebDataset shards.\n\n"
        "Start with `sgpipe demo --out demo-out` (offline, CPU), then `sgpipe run pipelines/coco.yaml`.\n\n"
        "Typical work: `sgpipe leakage RECIPE --against EVAL --out leak.json` (evaluation images in the "
        "source; `--set source.exclude=leak.json` leaves them out) -> "
        "`sgpipe run RECIPE --dry-run` (validate, count, estimate) -> `sgpipe run RECIPE` "
        "(rerun the same command to resume) -> `sgpipe stats OUT` / `sgpipe report OUT --output r.html` -> "
        "`sgpipe export OUT --format rlipv2 --output labels.json`. Training the verifier: `sgpipe convert` "
        "-> `sgpipe train pipelines/train_small.yaml` -> `sgpipe reverify`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(convert_app, name="convert")

def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    _setup_logging(verbose)
    # batch jobs log lines, not per-file download/loading bars (they flood cluster logs)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@app.command()
@user_errors(ValueError)  # generate_world's argument checks
def synth(
    out: Path = typer.Argument(..., help="Folder to write images/ and annotations/ into."),
    images: int = typer.Option(100, "--images", "-n", help="Number of images."),
    seed: int = typer.Option(0, "--seed", help="Same seed and arguments, same bytes."),
    hallucination_rate: float = typer.Option(
        0.3, "--hallucination-rate", help="Fraction of captions that state a false relation."
    ),
    image_size: int = typer.Option(320, "--image-size", help="Width and height of the JPEGs."),
    first_id: int = typer.Option(1, "--first-id", help="Image id of the first image (for disjoint splits)."),
) -> None:
    """Generate a synthetic COCO-format world whose relations are known (for tests, training, demos)."""
    from sgpipe.synth.world import generate_world

    summary = generate_world(
        out,
        n_images=images,
        seed=seed,
        hallucination_rate=hallucination_rate,
        image_size=image_size,
        first_image_id=first_id,
    )
    typer.echo(summary)


@app.command()
@user_errors(on_interrupt="interrupted: complete shards are kept; rerun the same command to resume")
def run(
    config: Path = typer.Argument(..., help="A recipe from pipelines/, e.g. pipelines/coco.yaml."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    force: bool = typer.Option(False, "--force", help="Resume even if OUT was written with another config."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (else RAY_ADDRESS)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Process only the first N images (trial run)."),
    shards: Optional[str] = typer.Option(
        None, "--shards", help="Only shards a:b (Python slice of shard ids)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate everything and print what would run."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Periodic progress line."),
    metrics: Optional[Path] = typer.Option(
        None, "--metrics", help="Append one JSON line per finished shard here."
    ),
    redo_failed: bool = typer.Option(
        False,
        "--redo-failed",
        help="Also redo complete shards whose samples failed for a retryable reason "
        "(missing, undecodable, a stage error); other shards are not touched.",
    ),
) -> None:
    """Run a pipeline recipe: source -> caption -> parse -> tag -> verify -> shards (resumable)."""
    from sgpipe.run import RunOptions, run_pipeline
    from sgpipe.run.preflight import checked_config

    overrides = list(set_)
    if address:
        overrides.append(f"run.address={address}")
    if limit is not None:
        overrides.append(f"source.limit={limit}")
    cfg = checked_config(config, overrides)
    summary = run_pipeline(
        cfg,
        RunOptions(
            force=force,
            shard_range=shards,
            dry_run=dry_run,
            progress=progress,
            metrics_path=str(metrics) if metrics else None,
            redo_failed=redo_failed,
        ),
    )
    typer.echo(summary)


@app.command()
@user_errors()
def leakage(
    config: Path = typer.Argument(..., help="A recipe; its source section names the images, as for `run`."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    against: list[str] = typer.Option(
        ...,
        "--against",
        help="Evaluation set (repeatable): an image folder (searched recursively), an image, or a "
        "COCO-format JSON whose image ids are the source's (COCO 2014/2017, V-COCO, RefCOCO).",
    ),
    out: Path = typer.Option(..., "--out", help="JSON list of the matched source images (source.exclude)."),
    max_distance: Optional[int] = typer.Option(
        None, "--max-distance", help="Perceptual-hash bits (of 256) still called a copy (default 56)."
    ),
    threads: int = typer.Option(
        os.cpu_count() or 4, "--threads", help="Threads hashing files and matching hashes."
    ),
) -> None:
    """Find source images that are also evaluation images: same id, same bytes, or a near-copy."""
    from sgpipe.config import load_config
    from sgpipe.leakage.scan import DEFAULT_MAX_DISTANCE, find_leakage

    cfg = load_config(config, set_)  # only the source is read: checked there
    distance = DEFAULT_MAX_DISTANCE if max_distance is None else max_distance
    typer.echo(find_leakage(cfg, against, out, max_distance=distance, threads=threads))


@app.command()
@user_errors()
def demo(
    out: Path = typer.Option(
        Path("demo-out"), "--out", help="Folder for the synthetic world and the shards."
    ),
    images: int = typer.Option(48, "--images", help="Images in the validation world."),
    train_images: int = typer.Option(1000, "--train-images", help="Images in the training world."),
    train_steps: Optional[int] = typer.Option(
        None,
        "--train-steps",
        help="Training steps of the verifier (default: the demo's fixed count; steps, not seconds, so the "
        "figures are the same on any machine).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the verifier's training."),
) -> None:
    """Offline end-to-end demo on CPU: synthetic world -> train verifier -> full pipeline -> report."""
    from sgpipe.demo import DEMO_TRAIN_STEPS, run_demo

    steps = DEMO_TRAIN_STEPS if train_steps is None else train_steps
    typer.echo(run_demo(out, n_images=images, n_train_images=train_images, train_steps=steps, seed=seed))


@app.command()
@user_errors()
def inspect(
    path: str = typer.Argument(..., help="A shard .tar, an output folder, or a brace pattern (path or URL)."),
    limit: int = typer.Option(3, "--limit", help="Records to print in full."),
    render: Optional[Path] = typer.Option(None, "--render", help="Write PNG renderings of records here."),
    storage_options: Optional[str] = storage_option(),
) -> None:
    """Print records and counts of shards; optionally render boxes and relations as PNGs."""
    from sgpipe.tools.inspect_shards import inspect_shards

    typer.echo(inspect_shards(path, limit=limit, render_dir=render, options=storage_from(storage_options)))


@app.command()
@user_errors()
def parse(
    text: Optional[str] = typer.Argument(None, help="A caption to parse."),
    input: Optional[Path] = typer.Option(None, "--input", help='JSON lines {"id", "text"}.'),
    output: Optional[Path] = typer.Option(None, "--output", help='JSON lines {"id", "triplets"}.'),
    spacy_model: str = typer.Option("en_core_web_sm", "--spacy-model", help="spaCy pipeline name."),
    model: Optional[str] = typer.Option(
        None, "--model", help="A text2text scene-graph model (parse.backend seq2seq) instead of the rules."
    ),
    num_beams: int = typer.Option(1, "--num-beams", min=1, help="With --model: 1 is greedy."),
) -> None:
    """Parse captions into subject-predicate-object triplets (one JSON line per triplet)."""
    from sgpipe.tools.parse_captions import parse_captions

    parser = None
    if model:
        from sgpipe.config import ParseConfig
        from sgpipe.stages.parse_seq2seq import Seq2SeqCaptionParser

        config = ParseConfig(spacy_model=spacy_model, backend="seq2seq", model=model, num_beams=num_beams)
        parser = Seq2SeqCaptionParser(config).load()
    parse_captions(text=text, input_path=input, output_path=output, spacy_model=spacy_model, parser=parser)


@app.command()
@user_errors()
def train(
    config: Path = typer.Argument(..., help="A training recipe, e.g. pipelines/train_small.yaml."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Train the verifier on streamed shards (ground truth or pseudo-labels)."""
    from sgpipe.train.loop import train_from_config

    typer.echo(train_from_config(config, set_))


@app.command()
@user_errors(on_interrupt="interrupted: complete shards are kept; rerun the same command to resume")
def reverify(
    out: str = typer.Argument(..., help="An sgpipe output folder (a path or a URL: s3://bucket/out)."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Verifier checkpoint folder."),
    new_out: str = typer.Option(..., "--out", help="Folder for the re-scored shards (a path or a URL)."),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="verify.* (thresholds, batch, dtype, assignment), run.* (executor, workers, device...), "
        "source.storage_options (reading OUT), output.storage_options (writing NEW), as for `run`.",
    ),
    force: bool = typer.Option(False, "--force", help="Resume into NEW even if it was written otherwise."),
    progress: bool = typer.Option(False, "--progress/--no-progress", help="Periodic progress line."),
) -> None:
    """Re-score existing shards with a new verifier checkpoint (no captioning or parsing again); a run
    like `sgpipe run`: resumable, retried, stopped cleanly, on this process or Ray."""
    from sgpipe.run import RunOptions
    from sgpipe.run.reverify import reverify as reverify_shards

    typer.echo(reverify_shards(out, checkpoint, new_out, set_, RunOptions(force=force, progress=progress)))


@app.command()
@user_errors()
def reshard(
    source: str = typer.Argument(
        ..., help="Input shards: a folder, a .tar or a brace pattern (path or URL)."
    ),
    out: str = typer.Argument(..., help="Folder for the equal-size shards (path or URL)."),
    samples_per_shard: int = typer.Option(100, "--samples-per-shard", help="Samples per output shard."),
    storage_options: Optional[str] = storage_option(),
) -> None:
    """Rewrite shards into equal-size ones (for training on ranks x workers)."""
    from sgpipe.tools.reshard import reshard as reshard_shards

    typer.echo(reshard_shards(source, out, samples_per_shard, storage_from(storage_options)))


@app.command()
@user_errors()
def export(
    out: str = typer.Argument(..., help=CORPUS_HELP),
    format: str = typer.Option("rlipv2", "--format", help="rlipv2 | parquet"),
    output: str = typer.Option(..., "--output", help="File to write (path or URL)."),
    min_confidence: Optional[float] = typer.Option(
        None, "--min-confidence", help="Drop relations below this."
    ),
    data_split: Optional[str] = typer.Option(
        None, "--data-split", help="rlipv2: the items' data_split (default: from the run's source.images)."
    ),
    storage_options: Optional[str] = storage_option(),
) -> None:
    """Export shards as RLIPv2's pre-training JSON (+ vocabulary, Objects365 paths) or a relations parquet."""
    from sgpipe.tools.export import export as run_export

    options = storage_from(storage_options)
    typer.echo(run_export(out, format, output, min_confidence, data_split, options))


@app.command()
@user_errors()
def compare(
    a: str = typer.Argument(
        ..., help="The reference: an sgpipe output folder (or shards) or an RLIPv2 label .json."
    ),
    b: str = typer.Argument(..., help="The corpus measured against A: the same kinds."),
    out: Optional[str] = typer.Option(None, "--out", help="Write the comparison as JSON here (path or URL)."),
    min_confidence: Optional[float] = typer.Option(
        None,
        "--min-confidence",
        help="Compare relations with confidence >= X on both sides (0.05: stored sets, 0.20: kept); "
        "default: sgpipe's kept relations and a label file's every relationship.",
    ),
    all_images: bool = typer.Option(
        False,
        "--all-images",
        help="Count the relations of images only one side has (default: images in both).",
    ),
    box_tolerance: float = typer.Option(
        0.5,
        "--box-tolerance",
        help="Pixels within which boxes are the same box (largest of |x|, |y|, |w|, |h|).",
    ),
    examples: int = typer.Option(
        10, "--examples", help="Images with the most disagreement listed in the JSON."
    ),
    storage_options: Optional[str] = storage_option(),
) -> None:
    """Two corpora side by side: relations in both, only in A, only in B; agreement; confidences."""
    from sgpipe.tools.compare import compare as run_compare

    typer.echo(
        run_compare(
            a,
            b,
            out,
            min_confidence=min_confidence,
            all_images=all_images,
            box_tolerance=box_tolerance,
            examples=examples,
            options=storage_from(storage_options),
        )
    )


@app.command()
@user_errors()
def stats(
    out: str = typer.Argument(..., help=CORPUS_HELP),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Write histogram PNGs into this folder."),
    storage_options: Optional[str] = storage_option(),
) -> None:
    """Totals, status counts, top predicates and categories, throughput."""
    from sgpipe.tools.stats import show_stats

    typer.echo(show_stats(out, plots_dir=plots, options=storage_from(storage_options)))


@app.command()
@user_errors()
def report(
    out: str = typer.Argument(..., help=CORPUS_HELP),
    output: str = typer.Option(..., "--output", help="HTML file to write (path or URL)."),
    samples: int = typer.Option(12, "--samples", help="Rendered samples in the gallery."),
    comparison: Optional[str] = typer.Option(
        None, "--comparison", help="A `sgpipe compare --out` JSON: adds a Comparison section."
    ),
    storage_options: Optional[str] = storage_option(),
) -> None:
    """A self-contained HTML report: run summary, plots, a gallery of rendered samples."""
    from sgpipe.tools.report import write_report

    options = storage_from(storage_options)
    typer.echo(write_report(out, output, n_samples=samples, options=options, comparison=comparison))


if __name__ == "__main__":
    app()
