"""`sgpipe compare A B`: two corpora side by side, image by image.

Sides are read by `compare_sources` (sgpipe corpora, RLIPv2 label JSONs), images and relations matched
by `compare_match`, numbers computed by `compare_stats`. A's selected relations are held in memory,
packed (`PackedImage`), while B streams past it; B is measured against A as the reference
(precision = shared / B, recall = shared / A).

The JSON (`--out`) follows `schemas/compare.schema.json`; `sgpipe report --comparison` renders it.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sgpipe.errors import SgpipeError
from sgpipe.tools.compare_match import BOX_TOLERANCE_PX, A, ImageDiff, diff_image
from sgpipe.tools.compare_sources import CORPUS, ImageId, ImageLabels, PackedImage, Side, open_side
from sgpipe.tools.compare_stats import agreement, confidence_summary

SCHEMA_VERSION = 1
EXAMPLE_RELATIONS = 30  # relations listed per example image, disagreements first


@dataclass
class SideTally:
    images: int = 0
    relations: int = 0
    dropped: int = 0
    repeated_images: int = 0


@dataclass
class PredicateTally:
    a: int = 0
    b: int = 0
    both: int = 0
    abs_diff_sum: float = 0.0
    pairs: int = 0


@dataclass
class Comparison:
    """Running totals over the images compared; `result()` gives the JSON document."""

    all_images: bool
    tolerance: float
    n_examples: int
    images: Counter[str] = field(default_factory=Counter)
    boxes: Counter[str] = field(default_factory=Counter)
    totals: Counter[str] = field(default_factory=Counter)
    predicates: dict[str, PredicateTally] = field(default_factory=dict)
    confidence_a: array = field(default_factory=lambda: array("d"))
    confidence_b: array = field(default_factory=lambda: array("d"))
    examples: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)

    def _predicate(self, text: str) -> PredicateTally:
        if text not in self.predicates:
            self.predicates[text] = PredicateTally()
        return self.predicates[text]

    def add(self, a: ImageLabels | None, b: ImageLabels | None) -> None:
        """One image: in both sides, or in one (counted in the relations only with `all_images`)."""
        diff = diff_image(a, b, self.tolerance)
        if a is None or b is None:
            side = "only_a" if b is None else "only_b"
            self.images[side] += 1
            self.images[f"relations_in_{side}"] += len(diff.only_a) + len(diff.only_b)
            if not self.all_images:
                return
        else:
            self.images["both"] += 1
            for name in ("by_id", "by_coordinates", "only_a", "only_b"):
                self.boxes[name] += getattr(diff.boxes, name)
        self._count(diff)
        if a is not None and b is not None:
            self._keep_example(a, b, diff)

    def _count(self, diff: ImageDiff) -> None:
        self.totals["both"] += len(diff.both)
        self.totals["only_a"] += len(diff.only_a)
        self.totals["only_b"] += len(diff.only_b)
        self.totals["duplicates_a"] += diff.duplicates_a
        self.totals["duplicates_b"] += diff.duplicates_b
        for (_, _, text), confidence_a, confidence_b in diff.both:
            tally = self._predicate(text)
            tally.a, tally.b, tally.both = tally.a + 1, tally.b + 1, tally.both + 1
            if confidence_a is not None and confidence_b is not None:
                self.confidence_a.append(confidence_a)
                self.confidence_b.append(confidence_b)
                tally.abs_diff_sum += abs(confidence_a - confidence_b)
                tally.pairs += 1
        for (_, _, text), _ in diff.only_a:
            self._predicate(text).a += 1
        for (_, _, text), _ in diff.only_b:
            self._predicate(text).b += 1

    def _keep_example(self, a: ImageLabels, b: ImageLabels, diff: ImageDiff) -> None:
        score = len(diff.only_a) + len(diff.only_b)
        if score == 0 or self.n_examples == 0:
            return
        if len(self.examples) >= self.n_examples and score < self.examples[-1][0]:
            return
        self.examples.append((score, a.key, example(a, b, diff)))
        self.examples.sort(key=lambda item: (-item[0], item[1]))
        del self.examples[self.n_examples :]

    def result(self, a: Side, b: Side, tallies: dict[str, SideTally], min_confidence: float | None) -> dict:
        n_a = self.totals["both"] + self.totals["only_a"]
        n_b = self.totals["both"] + self.totals["only_b"]
        return {
            "schema_version": SCHEMA_VERSION,
            "a": {**a.describe(), **vars(tallies[A])},
            "b": {**b.describe(), **vars(tallies["b"])},
            "settings": {
                "min_confidence": min_confidence,
                "images": "all" if self.all_images else "both",
                "box_tolerance_px": self.tolerance,
                "relation_identity": ["image", "subject box", "object box", "relation text"],
            },
            "images": {name: self.images[name] for name in IMAGE_COUNTS},
            "boxes": {name: self.boxes[name] for name in ("by_id", "by_coordinates", "only_a", "only_b")},
            "relations": {
                "a": n_a,
                "b": n_b,
                **{
                    name: self.totals[name]
                    for name in ("both", "only_a", "only_b", "duplicates_a", "duplicates_b")
                },
                **agreement(n_a, n_b, self.totals["both"]),
            },
            "confidence": confidence_summary(self.confidence_a, self.confidence_b),
            "predicates": [
                {
                    "text": text,
                    "a": t.a,
                    "b": t.b,
                    "both": t.both,
                    "only_a": t.a - t.both,
                    "only_b": t.b - t.both,
                    **agreement(t.a, t.b, t.both),
                    "mean_abs_diff": t.abs_diff_sum / t.pairs if t.pairs else None,
                }
                for text, t in sorted(self.predicates.items(), key=lambda kv: (-(kv[1].a + kv[1].b), kv[0]))
            ],
            "examples": [item for _, _, item in self.examples],
        }


IMAGE_COUNTS = ("both", "only_a", "only_b", "relations_in_only_a", "relations_in_only_b")


def _box(labels: ImageLabels, index: int) -> dict[str, Any]:
    box = labels.boxes[index]
    return {"id": box.id, "category": box.category, "bbox": [round(v, 2) for v in box.bbox]}


def example(a: ImageLabels, b: ImageLabels, diff: ImageDiff) -> dict[str, Any]:
    """One image's relations side by side, for people: disagreements first, then shared ones."""
    sides = {A: a, "b": b}

    def row(key: tuple, where: str, confidence_a: float | None, confidence_b: float | None) -> dict[str, Any]:
        (subject_side, subject), (object_side, obj), text = key
        return {
            "subject": _box(sides[subject_side], subject),
            "text": text,
            "object": _box(sides[object_side], obj),
            "in": where,
            "confidence_a": confidence_a,
            "confidence_b": confidence_b,
        }

    rows = [row(k, "a", c, None) for k, c in diff.only_a] + [row(k, "b", None, c) for k, c in diff.only_b]
    rows += [row(k, "both", ca, cb) for k, ca, cb in diff.both]
    return {
        "key": a.key,
        "both": len(diff.both),
        "only_a": len(diff.only_a),
        "only_b": len(diff.only_b),
        "relations": rows[:EXAMPLE_RELATIONS],
    }


def _read(side: Side, tally: SideTally) -> dict[ImageId, PackedImage]:
    held: dict[ImageId, PackedImage] = {}
    for image in side.images:
        if image.image in held:
            tally.repeated_images += 1  # the first entry wins, as in a run and in `convert rlipv2`
            continue
        held[image.image] = PackedImage.pack(image)
        _tally(tally, image)
    return held


def _tally(tally: SideTally, image: ImageLabels) -> None:
    tally.images += 1
    tally.relations += len(image.relations)
    tally.dropped += image.dropped


def _check(min_confidence: float | None, box_tolerance: float, examples: int) -> None:
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise SgpipeError(f"--min-confidence must be within [0, 1], got {min_confidence}")
    if not box_tolerance >= 0.0:
        raise SgpipeError(f"--box-tolerance must be >= 0 pixels, got {box_tolerance}")
    if examples < 0:
        raise SgpipeError(f"--examples must be >= 0, got {examples}")


def compare_corpora(
    a: str,
    b: str,
    *,
    min_confidence: float | None = None,
    all_images: bool = False,
    box_tolerance: float = BOX_TOLERANCE_PX,
    examples: int = 10,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The comparison of B against A (sgpipe corpora or RLIPv2 label JSONs, paths or URLs) as the JSON
    document of `schemas/compare.schema.json`."""
    _check(min_confidence, box_tolerance, examples)
    options = options or {}
    side_a, side_b = open_side(a, options, min_confidence), open_side(b, options, min_confidence)
    tallies = {A: SideTally(), "b": SideTally()}
    comparison = Comparison(all_images, box_tolerance, examples)
    held = _read(side_a, tallies[A])
    seen_b: set[ImageId] = set()
    for image in side_b.images:
        if image.image in seen_b:
            tallies["b"].repeated_images += 1
            continue
        seen_b.add(image.image)
        _tally(tallies["b"], image)
        packed = held.pop(image.image, None)
        comparison.add(packed.unpack(image.image) if packed else None, image)
    for identity, packed in held.items():
        comparison.add(packed.unpack(identity), None)
    return comparison.result(side_a, side_b, tallies, min_confidence)


def text_forms_note(result: dict[str, Any]) -> str | None:
    """A warning when one side is an sgpipe corpus read as lemmas and the other a label JSON."""
    kinds = {result["a"]["kind"], result["b"]["kind"]}
    forms = {result[s]["relation_text"] for s in ("a", "b") if result[s]["kind"] == CORPUS}
    if len(kinds) == 2 and forms == {"lemma"}:
        return (
            "note: the sgpipe side's relation text is the lemma ('sit on'), as its export writes it; "
            "RLIPv2's own label files carry the surface text ('sitting on'): against one of those, "
            "relations that differ only in that form count as different"
        )
    return None


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _describe(name: str, side: dict[str, Any]) -> str:
    kind = "sgpipe corpus" if side["kind"] == CORPUS else "RLIPv2 label JSON"
    text = "as in the file" if side["relation_text"] == "file" else side["relation_text"]
    extra = f", {side['repeated_images']} repeated images skipped" if side["repeated_images"] else ""
    extra += f", {side['dropped']} unusable relationships skipped" if side["dropped"] else ""
    return (
        f"{name}: {side['path']} ({kind}; relation text: {text}; {side['selection']}): "
        f"{side['images']} images, {side['relations']} relations{extra}"
    )


def format_summary(result: dict[str, Any], top: int = 15) -> str:
    """The comparison as a few readable lines."""
    images, boxes, relations = result["images"], result["boxes"], result["relations"]
    confidence = result["confidence"]
    scope = (
        "counted below" if result["settings"]["images"] == "all" else "left out (--all-images counts them)"
    )
    lines = [
        _describe("A", result["a"]),
        _describe("B", result["b"]),
        f"images: {images['both']} in both, {images['only_a']} only in A "
        f"({images['relations_in_only_a']} relations), {images['only_b']} only in B "
        f"({images['relations_in_only_b']}): their relations {scope}",
        f"boxes: {boxes['by_id'] + boxes['by_coordinates']} matched ({boxes['by_id']} by id, "
        f"{boxes['by_coordinates']} by coordinates within {result['settings']['box_tolerance_px']:g} px), "
        f"{boxes['only_a']} only in A, {boxes['only_b']} only in B",
        f"relations: {relations['both']} in both, {relations['only_a']} only in A, "
        f"{relations['only_b']} only in B",
        f"  agreement: Jaccard {_number(relations['jaccard'])}, precision of B against A "
        f"{_number(relations['precision'])}, recall {_number(relations['recall'])}, "
        f"F1 {_number(relations['f1'])}",
        f"confidence on the {confidence['pairs']} shared relations: "
        f"Pearson {_number(confidence['pearson'])}, Spearman {_number(confidence['spearman'])}, "
        f"|A - B| max {_number(confidence['max_abs_diff'], 4)}, "
        f"mean {_number(confidence['mean_abs_diff'], 4)}",
    ]
    predicates = result["predicates"]
    if predicates:
        lines.append(f"relation texts (both / only A / only B), {len(predicates)} distinct:")
        width = max(len(p["text"]) for p in predicates[:top])
        lines += [
            f"  {p['text']:<{width}}  {p['both']:>7} / {p['only_a']:>7} / {p['only_b']:>7}"
            for p in predicates[:top]
        ]
    note = text_forms_note(result)
    return "\n".join(lines + ([note] if note else []))


def compare(a: str, b: str, out: str | None = None, **settings: Any) -> str:
    """`sgpipe compare`: the summary text; with `out` (a path or URL), the JSON written there whole."""
    from sgpipe.output.atomic import write_json_atomic
    from sgpipe.tools.locations import new_file

    options = settings.get("options") or {}
    target = new_file(out, options) if out else None  # a missing bucket stops before any reading
    result = compare_corpora(a, b, **settings)
    text = format_summary(result)
    if target is not None:
        write_json_atomic(target, result)
        text += f"\nwrote {target}"
    return text
