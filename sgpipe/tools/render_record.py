"""Draw a scene-graph record on its image: boxes, labels, relation arrows (PIL only).

Kept relations are solid green arrows, dropped ones dashed grey, unverified ones (kept null) solid
orange; each arrow carries its predicate and confidence. Small images are upscaled first so labels
stay readable; label-only records (no image bytes) are drawn on a blank canvas of the record's size.
"""

from __future__ import annotations

import io
import math
from typing import Any

from PIL import Image, ImageDraw, ImageFont

MIN_SIDE = 512  # renders are upscaled to at least this longer side
MAX_RELATIONS = 40  # the most confident ones; more would hide the image
BOX_COLOURS = ["#1f77b4", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
KEPT_COLOUR = "#2ca02c"
DROPPED_COLOUR = "#9a9a9a"
UNVERIFIED_COLOUR = "#ff7f0e"


def _base_image(record: dict[str, Any], image_bytes: bytes | None) -> Image.Image:
    if image_bytes:
        try:
            with Image.open(io.BytesIO(image_bytes)) as image:
                return image.convert("RGB")
        except OSError:
            pass  # an unreadable image still gets its labels drawn
    width, height = max(int(record.get("width") or 1), 1), max(int(record.get("height") or 1), 1)
    return Image.new("RGB", (width, height), "white")


def _dashed_line(
    draw: ImageDraw.ImageDraw,
    start: tuple[float, float],
    end: tuple[float, float],
    fill: str,
    width: int,
    dash: float = 8.0,
) -> None:
    length = math.dist(start, end)
    if length == 0:
        return
    dx, dy = (end[0] - start[0]) / length, (end[1] - start[1]) / length
    position = 0.0
    while position < length:
        stop = min(position + dash, length)
        draw.line(
            [
                (start[0] + dx * position, start[1] + dy * position),
                (start[0] + dx * stop, start[1] + dy * stop),
            ],
            fill=fill,
            width=width,
        )
        position += 2 * dash


def _arrow_head(
    draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float], fill: str, size: float
) -> None:
    angle = math.atan2(end[1] - start[1], end[0] - start[0])
    left = (end[0] - size * math.cos(angle - 0.4), end[1] - size * math.sin(angle - 0.4))
    right = (end[0] - size * math.cos(angle + 0.4), end[1] - size * math.sin(angle + 0.4))
    draw.polygon([end, left, right], fill=fill)


def _offset(
    start: tuple[float, float], end: tuple[float, float], shift: float
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Shift a segment sideways (to its left) so that A->B and B->A arrows run side by side."""
    length = math.dist(start, end) or 1.0
    nx, ny = (end[1] - start[1]) / length * shift, -(end[0] - start[0]) / length * shift
    return (start[0] + nx, start[1] + ny), (end[0] + nx, end[1] + ny)


def _label(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    colour: str,
    font: ImageFont.ImageFont,
    placed: list[tuple[float, float, float, float]] | None = None,
) -> None:
    """A filled text tag at `xy`; moved down past the tags already `placed` so none is overprinted."""
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    step = bottom - top + 3
    for _ in range(12):
        box = (left - 2, top - 1, right + 2, bottom + 1)
        if placed is None or not any(_overlap(box, other) for other in placed):
            break
        top, bottom, xy = top + step, bottom + step, (xy[0], xy[1] + step)
    if placed is not None:
        placed.append(box)
    draw.rectangle(box, fill=colour)
    draw.text(xy, text, fill="white", font=font)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def relation_style(relation: dict[str, Any]) -> tuple[str, bool]:
    """(colour, dashed) of a relation arrow: kept green, dropped dashed grey, unverified orange."""
    kept = relation.get("kept")
    if kept is None:
        return UNVERIFIED_COLOUR, False
    return (KEPT_COLOUR, False) if kept else (DROPPED_COLOUR, True)


def render_record(record: dict[str, Any], image_bytes: bytes | None = None) -> Image.Image:
    """The record's image (or a blank canvas) with its boxes and relations drawn on it."""
    image = _base_image(record, image_bytes)
    # Boxes are in the record's pixel frame; the stored image may differ (EXIF rotation), so scale per axis.
    sx = image.width / max(int(record.get("width") or image.width), 1)
    sy = image.height / max(int(record.get("height") or image.height), 1)
    zoom = max(1.0, MIN_SIDE / max(image.width, image.height))
    if zoom > 1.0:
        image = image.resize(
            (round(image.width * zoom), round(image.height * zoom)), Image.Resampling.BILINEAR
        )
    sx, sy = sx * zoom, sy * zoom
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(11, image.width // 50))
    line = max(2, image.width // 300)

    boxes: dict[int, tuple[float, float, float, float]] = {}
    placed: list[tuple[float, float, float, float]] = []  # label tags drawn so far
    for i, obj in enumerate(record.get("objects", [])):
        x, y, w, h = obj["bbox"]
        box = (x * sx, y * sy, (x + w) * sx, (y + h) * sy)
        boxes[obj["id"]] = box
        colour = BOX_COLOURS[i % len(BOX_COLOURS)]
        draw.rectangle(box, outline=colour, width=line)
        _label(draw, (box[0] + line, box[1] + line), f"{obj['category']} #{obj['id']}", colour, font, placed)

    relations = sorted(record.get("relations", []), key=lambda r: -(r.get("confidence") or 0.0))
    for relation in relations[:MAX_RELATIONS]:
        pair = (relation["subject_id"], relation["object_id"])
        if pair[0] not in boxes or pair[1] not in boxes:
            continue
        s, o = boxes[pair[0]], boxes[pair[1]]
        start, end = _offset(
            ((s[0] + s[2]) / 2, (s[1] + s[3]) / 2), ((o[0] + o[2]) / 2, (o[1] + o[3]) / 2), 2 * line
        )
        colour, dashed = relation_style(relation)
        if dashed:
            _dashed_line(draw, start, end, colour, line)
        else:
            draw.line([start, end], fill=colour, width=line)
        _arrow_head(draw, start, end, colour, size=4 * line + 6)
        confidence = relation.get("confidence")
        text = relation["predicate"] + ("" if confidence is None else f" {confidence:.2f}")
        # at 40% from the subject, so the labels of A->B and B->A do not meet in the middle
        anchor = (start[0] + 0.4 * (end[0] - start[0]), start[1] + 0.4 * (end[1] - start[1]))
        _label(draw, anchor, text, colour, font, placed)
    return image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
