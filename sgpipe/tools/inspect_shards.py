"""`sgpipe inspect`: counts over shards, the first records in compact form, optional PNG renderings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sgpipe.output.atomic import atomic_write_bytes
from sgpipe.shards import expand_urls, iter_shard_samples


def _fmt_confidence(value: float | None) -> str:
    return "unverified" if value is None else f"{value:.2f}"


def format_record(record: dict[str, Any], has_image: bool) -> str:
    """A few lines per record: boxes, triplets as `subj -pred-> obj`, relations with confidence and kept."""
    objects = {o["id"]: o for o in record.get("objects", [])}
    lines = [
        f"{record.get('key')}  {record.get('width')}x{record.get('height')}  "
        f"{len(objects)} objects  {len(record.get('triplets', []))} triplets  "
        f"{len(record.get('relations', []))} relations" + ("" if has_image else "  (no image)")
    ]
    if objects:
        lines.append(
            "  objects:   "
            + ", ".join(
                f"{o['category']}#{o['id']} [{', '.join(f'{v:g}' for v in o['bbox'])}]"
                for o in objects.values()
            )
        )
    for t in record.get("triplets", []):
        lines.append(
            f"  triplet:   {t['subject']} -{t['predicate']}-> {t['object']}  (support {t['support']})"
        )
    for r in record.get("relations", []):
        subject = objects.get(r["subject_id"], {}).get("category", "?")
        obj = objects.get(r["object_id"], {}).get("category", "?")
        kept = {True: "kept", False: "dropped", None: ""}[r.get("kept")]
        lines.append(
            f"  relation:  {subject}#{r['subject_id']} -{r['predicate']}-> {obj}#{r['object_id']}  "
            f"confidence {_fmt_confidence(r.get('confidence'))} {kept}".rstrip()
        )
    return "\n".join(lines)


def inspect_shards(
    path: str | Path, limit: int = 3, render_dir: Path | None = None, options: dict[str, Any] | None = None
) -> str:
    """Summarise the shards at `path` (.tar, folder or brace pattern; a path or URL, read with the
    fsspec `options`); render the first `limit`."""
    from sgpipe.tools.render_record import png_bytes, render_record

    urls = expand_urls(path, options)
    counts = {"samples": 0, "with_images": 0, "objects": 0, "triplets": 0, "relations": 0, "kept": 0}
    shown: list[str] = []
    rendered: list[Path] = []
    if render_dir is not None:
        render_dir = Path(render_dir)
        render_dir.mkdir(parents=True, exist_ok=True)
    for sample in iter_shard_samples(urls, options):
        record = sample.record
        relations = record.get("relations", [])
        counts["samples"] += 1
        counts["with_images"] += sample.image_bytes is not None
        counts["objects"] += len(record.get("objects", []))
        counts["triplets"] += len(record.get("triplets", []))
        counts["relations"] += len(relations)
        counts["kept"] += sum(1 for r in relations if r.get("kept"))
        if len(shown) < limit:
            shown.append(format_record(record, sample.image_bytes is not None))
            if render_dir is not None:
                target = render_dir / f"{sample.key}.png"
                atomic_write_bytes(target, png_bytes(render_record(record, sample.image_bytes)))
                rendered.append(target)
    header = (
        f"{len(urls)} shards, {counts['samples']} samples ({counts['with_images']} with images), "
        f"{counts['objects']} objects, {counts['triplets']} triplets, {counts['relations']} relations, "
        f"{counts['kept']} kept"
    )
    parts = [header, *shown]
    if rendered:
        parts.append(f"rendered {len(rendered)} PNGs into {render_dir}")
    return "\n".join(parts)
