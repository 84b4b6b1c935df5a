"""`sgpipe convert ...`: ground-truth scene graphs into training shards, RLIPv2's R-Tagger weights into
a model folder. Heavy modules are imported inside each command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sgpipe.cli_support import storage_from, storage_option, user_errors

convert_app = typer.Typer(
    help="Turn ground-truth scene graphs into training shards; RLIPv2's R-Tagger weights into a model folder.",
    no_args_is_help=True,
)


@convert_app.command("vg")
@user_errors()
def convert_vg(
    images: Path = typer.Option(..., "--images", help="Visual Genome image folder."),
    scene_graphs: Path = typer.Option(
        ..., "--scene-graphs", help="scene_graphs.json (or relationships.json)."
    ),
    out: str = typer.Option(..., "--out", help="Folder for training shards (path or URL)."),
    image_data: Optional[Path] = typer.Option(
        None, "--image-data", help="image_data.json (sizes, file names)."
    ),
    samples_per_shard: int = typer.Option(1000, "--samples-per-shard"),
    storage_options: Optional[str] = storage_option(),
) -> None:
    """Visual Genome scene graphs -> training shards."""
    from sgpipe.tools.convert import convert_vg as run_convert

    options = storage_from(storage_options)
    typer.echo(
        run_convert(
            images,
            scene_graphs,
            out,
            image_data=image_data,
            samples_per_shard=samples_per_shard,
            options=options,
        )
    )


@convert_app.command("synth")
@user_errors()
def convert_synth(
    world: Path = typer.Argument(..., help="A folder written by `sgpipe synth`."),
    out: str = typer.Option(..., "--out", help="Folder for training shards (path or URL)."),
    samples_per_shard: int = typer.Option(100, "--samples-per-shard"),
    storage_options: Optional[str] = storage_option(),
) -> None:
    """The synthetic world's true relations (and its captions' false ones as negatives) -> training shards."""
    from sgpipe.tools.convert import convert_synth as run_convert

    typer.echo(
        run_convert(world, out, samples_per_shard=samples_per_shard, options=storage_from(storage_options))
    )


@convert_app.command("rlipv2")
@user_errors()
def convert_rlipv2(
    labels: Path = typer.Argument(..., help="RLIPv2's pseudo-label JSON (COCO or Objects365, or a merge)."),
    images: Path = typer.Option(
        ..., "--images", help="RLIPv2's image folder: COCO (train2017/...), Objects365 root, or VG images."
    ),
    out: str = typer.Option(..., "--out", help="Folder for the shards (path or URL)."),
    image_paths: Optional[Path] = typer.Option(
        None, "--image-paths", help="Objects365 image_id_to_filepath.json (default: in --images)."
    ),
    samples_per_shard: int = typer.Option(1000, "--samples-per-shard"),
    storage_options: Optional[str] = storage_option(),
) -> None:
    """RLIPv2's released pseudo-labels -> shards (confidence kept, kept at >= 0.20)."""
    from sgpipe.tools.convert import convert_rlipv2 as run_convert

    options = storage_from(storage_options)
    typer.echo(
        run_convert(
            labels, images, out, image_paths=image_paths, samples_per_shard=samples_per_shard, options=options
        )
    )


@convert_app.command("rtagger")
@user_errors()
def convert_rtagger(
    checkpoint: Path = typer.Argument(..., help="RLIPv2's R-Tagger checkpoint (checkpoint0019.pth)."),
    out: Path = typer.Option(..., "--out", help="Folder to write (config.json, model.safetensors, tokenizer)."),
    tokenizer: str = typer.Option("roberta-base", "--tokenizer", help="Tokenizer folder or hub id."),
    assume_released: Optional[str] = typer.Option(
        None, "--assume-released",
        help="For a checkpoint that stores no args: convert it with the flags of RLIPv2's released tagger script "
        "for this backbone (resnet50 | swin_tiny | swin_large).",
    ),
) -> None:
    """RLIPv2's R-Tagger weights (ResNet-50, Swin-T, Swin-L) -> a folder `verify.checkpoint` accepts."""
    from sgpipe.models.rtagger.convert import convert_rtagger as run_convert

    typer.echo(run_convert(checkpoint, out, tokenizer=tokenizer, assume_released=assume_released))
