"""`sgpipe report`: one self-contained HTML page (images inlined as base64 PNG, no external requests).

Sections: run summary (run.json), totals and status table, plots, and a gallery of rendered samples.
A small inline script marks `<body data-images-loaded="true">` once every image decoded, so a headless
browser can check the page really renders.
"""

from __future__ import annotations

import base64
import html
import json
from typing import Any

from PIL import Image

from sgpipe.errors import SgpipeError
from sgpipe.output.atomic import atomic_write_bytes
from sgpipe.shards import iter_shard_samples
from sgpipe.storage import Location, RemotePath
from sgpipe.tools.locations import SHARD_TAR, existing_file, existing_folder, files_matching, new_file
from sgpipe.tools.stats import load_run, run_seconds, stats_of

THUMB_SIDE = 480  # gallery renders are shrunk to this longer side to keep the page small
MAX_LISTED_RELATIONS = 8

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; background: #fff; }
h1 { margin-top: 0; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #ddd; padding: .25em .6em;
 text-align: left; vertical-align: top; } th { background: #f4f4f4; }
.plots img { max-width: 48%; margin: .5em 1% .5em 0; vertical-align: top; }
.gallery { display: flex; flex-wrap: wrap; gap: 1em; }
.gallery figure { margin: 0; width: 320px; } .gallery img { width: 100%; border: 1px solid #ccc; }
figcaption { font-size: .8em; }
.kept { color: #2ca02c; } .dropped { color: #888; } .unverified { color: #e67300; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.every(function (img) { return img.complete && img.naturalWidth > 0; });
  document.body.setAttribute("data-image-count", String(images.length));
  document.body.setAttribute("data-images-loaded", ok ? "true" : "false");
});
"""


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _table(rows: list[tuple[str, Any]], header: tuple[str, str] | None = None) -> str:
    head = f"<tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th></tr>" if header else ""
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_text(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{head}{body}</table>"


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "" if value is None else str(value)


def _run_section(run: dict[str, Any]) -> str:
    if not run:
        return "<p>No run.json in this folder (shards written by a conversion tool or still running).</p>"
    dataset = run.get("dataset") or {}
    seconds = run_seconds(run)
    rows = [
        ("dataset", dataset.get("name")),
        ("licence", dataset.get("licence_note")),
        ("started", run.get("started")),
        ("ended", run.get("ended")),
        ("wall seconds", None if seconds is None else round(seconds, 1)),
        ("resumed", run.get("resumed")),
        ("config hash", run.get("config_hash")),
        ("git sha", run.get("git_sha")),
        ("models", run.get("models")),
        ("thresholds", run.get("thresholds")),
        ("versions", run.get("versions")),
    ]
    return _table([(k, v) for k, v in rows if v not in (None, {}, "")])


def _totals_section(stats: dict[str, Any]) -> str:
    totals = stats["totals"]
    rows = [("shards", stats["shards"])] + [
        (name, totals[name])
        for name in (
            "count",
            "successes",
            "failed_to_process",
            "n_objects",
            "n_captions",
            "n_triplets",
            "n_relations",
            "n_kept",
        )
    ]
    rows.append(("images per worker-second", stats.get("throughput", {}).get("images_per_worker_second")))
    status = sorted(stats["status"].items(), key=lambda kv: (-kv[1], kv[0]))
    return _table(rows) + "<h3>Status</h3>" + _table(status, header=("status", "images"))


def _relation_items(record: dict[str, Any]) -> str:
    names = {o["id"]: o["category"] for o in record.get("objects", [])}
    relations = sorted(record.get("relations", []), key=lambda r: -(r.get("confidence") or 0.0))
    items = []
    for r in relations[:MAX_LISTED_RELATIONS]:
        css = {True: "kept", False: "dropped", None: "unverified"}[r.get("kept")]
        confidence = "" if r.get("confidence") is None else f" {r['confidence']:.2f}"
        subject, obj = names.get(r["subject_id"], "?"), names.get(r["object_id"], "?")
        text = f"{subject} -{r['predicate']}-> {obj}{confidence}"
        items.append(f'<li class="{css}">{html.escape(text)}</li>')
    more = len(relations) - MAX_LISTED_RELATIONS
    if more > 0:
        items.append(f"<li>... {more} more</li>")
    return f"<ul>{''.join(items)}</ul>" if items else "<p>no relations</p>"


def _gallery(out: Location, n_samples: int) -> list[str]:
    from sgpipe.tools.render_record import png_bytes, render_record

    figures: list[str] = []
    shards = files_matching(out, SHARD_TAR)
    if n_samples <= 0 or not shards:
        return figures
    for sample in iter_shard_samples([str(s) for s in shards], _options(out)):
        if len(figures) >= n_samples:
            break
        image = render_record(sample.record, sample.image_bytes)
        image.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
        image = image.quantize(256, method=Image.Quantize.FASTOCTREE)  # a third of the bytes, same look
        key = html.escape(sample.key)
        figures.append(
            f'<figure><img alt="{key}" src="{_data_uri(png_bytes(image))}">'
            f"<figcaption><b>{key}</b>{_relation_items(sample.record)}</figcaption></figure>"
        )
    return figures


def _options(folder: Location) -> dict[str, Any]:
    return folder.options if isinstance(folder, RemotePath) else {}


def build_report(
    out: str | Location,
    n_samples: int = 12,
    options: dict[str, Any] | None = None,
    comparison: dict[str, Any] | None = None,
) -> str:
    """The report's HTML text for the output folder `out` (a path or URL); with `comparison` (a
    `sgpipe compare` JSON document), a Comparison section too."""
    from sgpipe.tools.compare_report import STYLE as COMPARISON_STYLE
    from sgpipe.tools.compare_report import comparison_section
    from sgpipe.tools.plots import plot_pngs

    out = existing_folder(out, options)
    stats = stats_of(out)
    run = load_run(out)
    plots = plot_pngs(out, stats)
    figures = _gallery(out, n_samples)
    title = f"sgpipe report: {(run.get('dataset') or {}).get('name') or out.name}"
    plot_html = "".join(
        f'<img alt="{html.escape(name)}" src="{_data_uri(png)}">' for name, png in plots.items()
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title><style>{STYLE}{COMPARISON_STYLE}</style>"
            f"<script>{SCRIPT}</script></head>",
            "<body>",
            f"<h1>{html.escape(title)}</h1>",
            f"<h2>Run</h2>{_run_section(run)}",
            f"<h2>Totals</h2>{_totals_section(stats)}",
            f'<h2>Plots</h2><div class="plots" id="plots">{plot_html}</div>',
            comparison_section(comparison) if comparison is not None else "",
            "<h2>Samples</h2><p>Boxes with category and id; arrows from subject to object: "
            '<span class="kept">kept (solid green)</span>, '
            '<span class="dropped">dropped (dashed grey)</span>, '
            '<span class="unverified">unverified (solid orange)</span>.</p>',
            f'<div class="gallery" id="gallery">{"".join(figures)}</div>',
            "</body></html>",
        ]
    )


def read_comparison(path: str | Location, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A `sgpipe compare --out` file (a path or URL)."""
    source = existing_file(path, options)
    try:
        return json.loads(source.read_text())
    except ValueError as error:
        raise SgpipeError(f"{source} is not a `sgpipe compare --out` JSON: {error}") from error


def write_report(
    out: str | Location,
    output: str | Location,
    n_samples: int = 12,
    options: dict[str, Any] | None = None,
    comparison: str | Location | None = None,
) -> str:
    """Write the self-contained HTML report of `out` to `output` (paths or URLs), with the Comparison
    section of the `sgpipe compare --out` file `comparison` when given; a one-line summary."""
    target = new_file(output, options)  # a missing bucket stops before any reading
    compared = read_comparison(comparison, options) if comparison is not None else None
    page = build_report(out, n_samples, options, compared).encode("utf-8")
    atomic_write_bytes(target, page)
    return f"wrote {target} ({len(page) // 1024} KiB, self-contained)"
