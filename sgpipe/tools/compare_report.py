"""The report's "Comparison" section: a `sgpipe compare --out` JSON as HTML tables (no scripts, no images)."""

from __future__ import annotations

import html
from typing import Any, Sequence

from sgpipe.errors import SgpipeError
from sgpipe.tools.compare import SCHEMA_VERSION, text_forms_note

TOP_TEXTS = 25

STYLE = """
.comparison td.number { text-align: right; font-variant-numeric: tabular-nums; }
.comparison .heat td { width: 2.6em; text-align: center; font-size: .8em; }
.comparison .in-a { color: #1f77b4; } .comparison .in-b { color: #d62728; }
.comparison .in-both { color: #2ca02c; }
"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="number">{value:.3f}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="number">{value}</td>'
    return f"<td>{html.escape('n/a' if value is None else str(value))}</td>"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><tr>{head}</tr>{body}</table>'


def _sides(result: dict[str, Any]) -> str:
    fields = (
        "path",
        "kind",
        "relation_text",
        "selection",
        "images",
        "relations",
        "dropped",
        "repeated_images",
    )
    return table(["", "A (reference)", "B"], [(f, result["a"][f], result["b"][f]) for f in fields])


def _counts(result: dict[str, Any]) -> str:
    images, boxes, relations = result["images"], result["boxes"], result["relations"]
    rows = [
        ("images", images["both"], images["only_a"], images["only_b"]),
        (
            "boxes (images in both)",
            boxes["by_id"] + boxes["by_coordinates"],
            boxes["only_a"],
            boxes["only_b"],
        ),
        ("relations", relations["both"], relations["only_a"], relations["only_b"]),
    ]
    agreement = [(name, relations[name]) for name in ("jaccard", "precision", "recall", "f1")]
    settings = result["settings"]
    return (
        table(["", "in both", "only in A", "only in B"], rows)
        + f"<p>Boxes matched by id: {boxes['by_id']}, by coordinates within "
        f"{settings['box_tolerance_px']:g} px: {boxes['by_coordinates']}. Images compared: "
        f"{html.escape(settings['images'])}; minimum confidence: "
        f"{'none (the kept sets)' if settings['min_confidence'] is None else settings['min_confidence']}.</p>"
        + table(["agreement (B against A)", "value"], agreement)
    )


def _confidence(confidence: dict[str, Any]) -> str:
    names = ("pairs", "pearson", "spearman", "max_abs_diff", "mean_abs_diff", "mean_a", "mean_b")
    summary = table(["shared relations' confidences", "value"], [(n, confidence[n]) for n in names])
    counts = confidence["histogram"]["counts"]
    edges = confidence["histogram"]["edges"]
    peak = max((max(row) for row in counts), default=0) or 1
    rows = []
    for i in reversed(range(len(counts))):  # A's high confidences at the top, as on a plot
        cells = "".join(
            f'<td style="background: rgba(31,119,180,{0.1 + 0.9 * n / peak if n else 0:.2f})">{n or ""}</td>'
            for n in counts[i]
        )
        rows.append(f"<tr><th>A {edges[i]:.1f}-{edges[i + 1]:.1f}</th>{cells}</tr>")
    footer = "".join(f"<th>{edges[j]:.1f}</th>" for j in range(len(counts)))
    heat = f'<table class="heat">{"".join(rows)}<tr><th>B from</th>{footer}</tr></table>'
    return summary + "<h4>Joint histogram (A's confidence by row, B's by column)</h4>" + heat


def _texts(predicates: list[dict[str, Any]]) -> str:
    header = ["relation text", "both", "only A", "only B", "Jaccard", "precision", "recall", "mean |A - B|"]
    fields = ("text", "both", "only_a", "only_b", "jaccard", "precision", "recall", "mean_abs_diff")
    rows = [[p[f] for f in fields] for p in predicates[:TOP_TEXTS]]
    more = (
        f"<p>... and {len(predicates) - TOP_TEXTS} more in the JSON.</p>"
        if len(predicates) > TOP_TEXTS
        else ""
    )
    return table(header, rows) + more


def _box(box: dict[str, Any]) -> str:
    return f"{box['category']}#{box['id']} [{', '.join(f'{v:g}' for v in box['bbox'])}]"


def _examples(examples: list[dict[str, Any]]) -> str:
    parts = []
    for item in examples:
        rows = "".join(
            f'<tr class="in-{r["in"]}"><td>{html.escape(_box(r["subject"]))}</td>'
            f"<td>{html.escape(r['text'])}</td><td>{html.escape(_box(r['object']))}</td><td>{r['in']}</td>"
            f"{_cell(r['confidence_a'])}{_cell(r['confidence_b'])}</tr>"
            for r in item["relations"]
        )
        head = "<tr><th>subject</th><th>text</th><th>object</th><th>in</th><th>A</th><th>B</th></tr>"
        parts.append(
            f"<h4>{html.escape(item['key'])}: {item['both']} in both, {item['only_a']} only in A, "
            f"{item['only_b']} only in B</h4><table>{head}{rows}</table>"
        )
    return "".join(parts) or "<p>No image differs.</p>"


def comparison_section(result: dict[str, Any]) -> str:
    """The section's HTML (heading included) for a `sgpipe compare` JSON document."""
    if not isinstance(result, dict) or result.get("schema_version") != SCHEMA_VERSION:
        raise SgpipeError(f"not a `sgpipe compare --out` file of schema version {SCHEMA_VERSION}")
    note = text_forms_note(result)
    return "".join(
        [
            '<section class="comparison" id="comparison"><h2>Comparison</h2>',
            "<p>A relation is the same on both sides when its image, subject box, object box and relation "
            "text are; B is measured against A.</p>",
            _sides(result),
            f"<p>{html.escape(note)}</p>" if note else "",
            "<h3>Counts and agreement</h3>",
            _counts(result),
            "<h3>Confidence</h3>",
            _confidence(result["confidence"]),
            "<h3>By relation text</h3>",
            _texts(result["predicates"]),
            "<h3>Images that differ most</h3>",
            _examples(result["examples"]),
            "</section>",
        ]
    )
