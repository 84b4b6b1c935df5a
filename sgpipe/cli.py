"""The `sgpipe` command line: parses arguments, then calls config, runner and tools.

Heavy modules are imported inside each command so `sgpipe --help` stays instant.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from sgpipe.errors import SgpipeError

app = typer.Typer(
    help=(
        "Turn object-detection datasets (COCO, Objects365) into grounded scene-graph corpora: "
        "caption -> parse -> tag -> verify -> WebDataset shards.\n\n"
        "Start with `sgpipe demo --out demo-out` (offline, CPU), then `sgpipe run pipelines/coco.yaml`.\n\n"
        "Typical work: `sgpipe run RECIPE --dry-run` (validate, count, estimate) -> `sgpipe run RECIPE` "
        "(rerun the same command to resume) -> `sgpipe stats OUT` / `sgpipe report OUT --output r.html` -> "
        "`sgpipe export OUT --format rlipv2 --output labels.json`. Training the verifier: `sgpipe convert` "
        "-> `sgpipe train pipelines/train_small.yaml` -> `sgpipe reverify`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
convert_app = typer.Typer(help="Turn ground-truth scene graphs into training shards.", no_args_is_help=True)
app.add_typer(convert_app, name="convert")

SET_HELP = "Override a config key, e.g. --set output.samples_per_shard=500 (repeatable)."


def _fail(error: Exception) -> None:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(getattr(error, "exit_code", 2))


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

    try:
        summary = generate_world(
            out,
            n_images=images,
            seed=seed,
            hallucination_rate=hallucination_rate,
            image_size=image_size,
            first_image_id=first_id,
        )
    except (SgpipeError, ValueError) as error:
        _fail(error)
    typer.echo(summary)


@app.command()
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
) -> None:
    """Run a pipeline recipe: source -> caption -> parse -> tag -> verify -> shards (resumable)."""
    from sgpipe.config import load_config
    from sgpipe.runner import RunOptions, run_pipeline

    overrides = list(set_)
    if address:
        overrides.append(f"run.address={address}")
    if limit is not None:
        overrides.append(f"source.limit={limit}")
    try:
        cfg = load_config(config, overrides)
        summary = run_pipeline(
            cfg,
            RunOptions(
                force=force,
                shard_range=shards,
                dry_run=dry_run,
                progress=progress,
                metrics_path=str(metrics) if metrics else None,
            ),
        )
    except SgpipeError as error:
        _fail(error)
    except KeyboardInterrupt:  # Ctrl-C outside the shard loop (while planning, say), which stops itself
        typer.secho("interrupted: complete shards are kept; rerun the same command to resume", err=True)
        raise typer.Exit(130) from None
    typer.echo(summary)


@app.command()
def demo(
    out: Path = typer.Option(
        Path("demo-out"), "--out", help="Folder for the synthetic world and the shards."
    ),
    images: int = typer.Option(48, "--images", help="Images in the validation world."),
    train_images: int = typer.Option(1000, "--train-images", help="Images in the training world."),
    train_seconds: int = typer.Option(300, "--train-seconds", help="CPU time budget for the verifier."),
) -> None:
    """Offline end-to-end demo on CPU: synthetic world -> train verifier -> full pipeline -> report."""
    from sgpipe.demo import run_demo

    try:
        typer.echo(run_demo(out, n_images=images, n_train_images=train_images, train_seconds=train_seconds))
    except SgpipeError as error:
        _fail(error)


@app.command()
def inspect(
    path: str = typer.Argument(..., help="A shard .tar, an output folder, or a brace pattern."),
    limit: int = typer.Option(3, "--limit", help="Records to print in full."),
    render: Optional[Path] = typer.Option(None, "--render", help="Write PNG renderings of records here."),
) -> None:
    """Print records and counts of shards; optionally render boxes and relations as PNGs."""
    from sgpipe.inspect import inspect_shards

    try:
        typer.echo(inspect_shards(path, limit=limit, render_dir=render))
    except SgpipeError as error:
        _fail(error)


@app.command()
def parse(
    text: Optional[str] = typer.Argument(None, help="A caption to parse."),
    input: Optional[Path] = typer.Option(None, "--input", help='JSON lines {"id", "text"}.'),
    output: Optional[Path] = typer.Option(None, "--output", help='JSON lines {"id", "triplets"}.'),
    spacy_model: str = typer.Option("en_core_web_sm", "--spacy-model", help="spaCy pipeline name."),
) -> None:
    """Parse captions into subject-predicate-object triplets (one JSON line per triplet)."""
    from sgpipe.stages.parse import parse_command

    try:
        parse_command(text=text, input_path=input, output_path=output, spacy_model=spacy_model)
    except SgpipeError as error:
        _fail(error)


@app.command()
def train(
    config: Path = typer.Argument(..., help="A training recipe, e.g. pipelines/train_small.yaml."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Train the verifier on streamed shards (ground truth or pseudo-labels)."""
    from sgpipe.train.loop import train_from_config

    try:
        typer.echo(train_from_config(config, set_))
    except SgpipeError as error:
        _fail(error)


@app.command()
def reverify(
    out: Path = typer.Argument(..., help="An sgpipe output folder."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Verifier checkpoint folder."),
    new_out: Path = typer.Option(..., "--out", help="Folder for the re-scored shards."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Re-score existing shards with a new verifier checkpoint (no captioning or parsing again)."""
    from sgpipe.reverify import reverify as reverify_shards

    try:
        typer.echo(reverify_shards(out, checkpoint, new_out, set_))
    except SgpipeError as error:
        _fail(error)


@app.command()
def reshard(
    source: str = typer.Argument(..., help="Input shards: a folder, a .tar or a brace pattern."),
    out: Path = typer.Argument(..., help="Folder for the equal-size shards."),
    samples_per_shard: int = typer.Option(100, "--samples-per-shard", help="Samples per output shard."),
) -> None:
    """Rewrite shards into equal-size ones (for training on ranks x workers)."""
    from sgpipe.tools.reshard import reshard as reshard_shards

    try:
        typer.echo(reshard_shards(source, out, samples_per_shard))
    except SgpipeError as error:
        _fail(error)


@convert_app.command("vg")
def convert_vg(
    images: Path = typer.Option(..., "--images", help="Visual Genome image folder."),
    scene_graphs: Path = typer.Option(
        ..., "--scene-graphs", help="scene_graphs.json (or relationships.json)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for training shards."),
    image_data: Optional[Path] = typer.Option(
        None, "--image-data", help="image_data.json (sizes, file names)."
    ),
    samples_per_shard: int = typer.Option(1000, "--samples-per-shard"),
) -> None:
    """Visual Genome scene graphs -> training shards."""
    from sgpipe.tools.convert import convert_vg as run_convert

    try:
        typer.echo(
            run_convert(images, scene_graphs, out, image_data=image_data, samples_per_shard=samples_per_shard)
        )
    except SgpipeError as error:
        _fail(error)


@convert_app.command("synth")
def convert_synth(
    world: Path = typer.Argument(..., help="A folder written by `sgpipe synth`."),
    out: Path = typer.Option(..., "--out", help="Folder for training shards."),
    samples_per_shard: int = typer.Option(100, "--samples-per-shard"),
) -> None:
    """The synthetic world's true relations (and its captions' false ones as negatives) -> training shards."""
    from sgpipe.tools.convert import convert_synth as run_convert

    try:
        typer.echo(run_convert(world, out, samples_per_shard=samples_per_shard))
    except SgpipeError as error:
        _fail(error)


@app.command()
def export(
    out: Path = typer.Argument(..., help="An sgpipe output folder."),
    format: str = typer.Option("rlipv2", "--format", help="rlipv2 | parquet"),
    output: Path = typer.Option(..., "--output", help="File to write."),
    min_confidence: Optional[float] = typer.Option(
        None, "--min-confidence", help="Drop relations below this."
    ),
) -> None:
    """Export shards as RLIPv2/VG-style JSON (+ vocabulary file) or a flat relations parquet."""
    from sgpipe.tools.export import export as run_export

    try:
        typer.echo(run_export(out, format, output, min_confidence=min_confidence))
    except SgpipeError as error:
        _fail(error)


@app.command()
def stats(
    out: Path = typer.Argument(..., help="An sgpipe output folder."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Write histogram PNGs into this folder."),
) -> None:
    """Totals, status counts, top predicates and categories, throughput."""
    from sgpipe.tools.stats import show_stats

    try:
        typer.echo(show_stats(out, plots_dir=plots))
    except SgpipeError as error:
        _fail(error)


@app.command()
def report(
    out: Path = typer.Argument(..., help="An sgpipe output folder."),
    output: Path = typer.Option(..., "--output", help="HTML file to write."),
    samples: int = typer.Option(12, "--samples", help="Rendered samples in the gallery."),
) -> None:
    """A self-contained HTML report: run summary, plots, a gallery of rendered samples."""
    from sgpipe.tools.report import write_report

    try:
        typer.echo(write_report(out, output, n_samples=samples))
    except SgpipeError as error:
        _fail(error)


if __name__ == "__main__":
    app()
