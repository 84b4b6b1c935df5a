"""Score scene-graph records against the truth a synthetic world wrote.

Record relations carry a parser's predicate (a lemma phrase such as "sit on", "be inside", "cover");
`canonical_predicate` maps the phrasings the world's captions use back to the canonical set, and
relations whose predicate does not map are counted apart (they can be neither right nor wrong).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from sgpipe.synth.geometry import INVERSE, PREDICATES

Triple = tuple[int, int, str]  # (subject annotation id, object annotation id, canonical predicate)

_CANONICAL = {
    "above": "above",
    "over": "above",
    "below": "below",
    "under": "below",
    "beneath": "below",
    "underneath": "below",
    "left of": "left of",
    "left": "left of",
    "right of": "right of",
    "right": "right of",
    "next to": "next to",
    "beside": "next to",
    "on": "on",
    "on top of": "on",
    "on top": "on",
    "sit on": "on",
    "rest on": "on",
    "sit on top of": "on",
    "rest on top of": "on",
    "lie on": "on",
    "inside": "inside",
    "inside of": "inside",
    "in": "inside",
    "within": "inside",
    "in front of": "in front of",
    "in front": "in front of",
    "cover": "in front of",
    "hide": "in front of",
    "behind": "behind",
    "hide behind": "behind",
    # Passives kept as passives by a parser: "a star is covered by a circle" -> (star, cover by, circle).
    "cover by": "behind",
    "hide by": "behind",
}
# Surface forms a parser may leave unlemmatised.
_INFLECTIONS = {
    "sits": "sit",
    "sitting": "sit",
    "sat": "sit",
    "rests": "rest",
    "resting": "rest",
    "rested": "rest",
    "lies": "lie",
    "lying": "lie",
    "covers": "cover",
    "covering": "cover",
    "covered": "cover",
    "hides": "hide",
    "hiding": "hide",
    "hidden": "hide",
    "hid": "hide",
}
_DROPPED = {
    "be",
    "is",
    "are",
    "was",
    "were",
    "being",
    "been",
    "partly",
    "partially",
    "directly",
    "just",
    "the",
}


def canonical_predicate(text: str) -> str | None:
    """The canonical predicate a phrase names ("sit on" -> "on", "to the left of" -> "left of"), or None."""
    words = re.sub(r"[^a-z ]", " ", text.lower()).split()
    words = [_INFLECTIONS.get(w, w) for w in words if w not in _DROPPED]
    if words[:1] == ["to"] and words[1:2] in (["left"], ["right"]):
        words = words[1:]
    return _CANONICAL.get(" ".join(words))


@dataclass(slots=True)
class Truth:
    """Per image id: every true relation, the false ones captions state, the true ones captions state."""

    relations: dict[int, set[Triple]] = field(default_factory=dict)
    hallucinations: dict[int, set[Triple]] = field(default_factory=dict)
    stated: dict[int, set[Triple]] = field(default_factory=dict)


def _triple(row: dict[str, Any]) -> Triple:
    return (int(row["subject_id"]), int(row["object_id"]), str(row["predicate"]))


def same_claims(t: Triple) -> set[Triple]:
    """A statement and its converse wording ("a behind b" = "b in front of a").

    A parser may give either: it turns "a star is covered by a circle" into (circle, cover, star).
    """
    s, o, p = t
    if p in INVERSE:
        return {t, (o, s, INVERSE[p])}
    if p == "next to":
        return {t, (o, s, p)}
    return {t}


def load_truth(world_dir: Path) -> Truth:
    """Read annotations/relations.json, hallucinations.json and (if present) statements.json."""
    ann = Path(world_dir) / "annotations"
    truth = Truth()
    for entry in json.loads((ann / "relations.json").read_text(encoding="utf-8")):
        truth.relations[int(entry["image_id"])] = {_triple(r) for r in entry["relations"]}
    for row in json.loads((ann / "hallucinations.json").read_text(encoding="utf-8")):
        truth.hallucinations.setdefault(int(row["image_id"]), set()).add(_triple(row))
    statements = ann / "statements.json"
    if statements.exists():
        for row in json.loads(statements.read_text(encoding="utf-8")):
            if row["holds"]:
                truth.stated.setdefault(int(row["image_id"]), set()).add(_triple(row))
    return truth


def predicted_triples(record: dict[str, Any], kept_only: bool) -> tuple[set[Triple], int]:
    """A record's relations (with `kept_only`, its kept ones) as (subject id, object id, canonical
    predicate), and how many of them have a predicate that does not map."""
    predicted: set[Triple] = set()
    unmapped = 0
    for rel in record.get("relations", []):
        if kept_only and rel.get("kept") is not True:
            continue
        predicate = canonical_predicate(rel["predicate"])
        if predicate is None:
            unmapped += 1
            continue
        predicted.add((int(rel["subject_id"]), int(rel["object_id"]), predicate))
    return predicted, unmapped


def claim(t: Triple) -> Triple:
    """One representative of a statement and its converse wording (`same_claims`)."""
    return min(same_claims(t))


def claims_agreement(
    records_a: Iterable[dict[str, Any]], records_b: Iterable[dict[str, Any]], kept_only: bool = True
) -> dict[str, Any]:
    """Two runs over the same images, claim by claim: per image, the relations of each (kept ones with
    `kept_only`) as canonical claims, a statement and its converse wording one claim; counted in both,
    only in A, only in B, with the Jaccard index. Images only one side holds are counted, not compared."""
    claims: list[dict[int, set[Triple]]] = [{}, {}]
    for side, records in zip(claims, (records_a, records_b)):
        for record in records:
            triples, _ = predicted_triples(record, kept_only)
            side.setdefault(int(record["image_id"]), set()).update(claim(t) for t in triples)
    a, b = claims
    shared = a.keys() & b.keys()
    both = sum(len(a[i] & b[i]) for i in shared)
    only_a = sum(len(a[i] - b[i]) for i in shared)
    only_b = sum(len(b[i] - a[i]) for i in shared)
    return {
        "images": len(shared),
        "images_only_a": len(a.keys() - shared),
        "images_only_b": len(b.keys() - shared),
        "both": both,
        "only_a": only_a,
        "only_b": only_b,
        "jaccard": _ratio(both, both + only_a + only_b),
    }


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def evaluate_relations(records: Iterable[dict[str, Any]], truth: Truth, kept_only: bool) -> dict[str, Any]:
    """Precision and recall of the records' relations against the world's truth.

    Relations are taken as (subject_id, object_id, canonical predicate) sets per image, so several
    phrasings of one relation count once. With `kept_only`, only relations with `kept` true count.
    Recall is over every true relation of the evaluated images; `recall_stated` over the true
    relations that the captions state (what a caption-driven pipeline can find at best);
    `hallucinations_predicted` is the share of the captions' false relations that were predicted.
    A stated (or false) relation counts as found when it or its converse wording was predicted.
    """
    tp = fp = n_truth = n_stated = tp_stated = n_false = false_hit = unmapped = images = unknown = 0
    per_predicate = {p: {"tp": 0, "fp": 0, "fn": 0} for p in PREDICATES}
    for record in records:
        image_id = int(record["image_id"])
        if image_id not in truth.relations:
            unknown += 1
            continue
        images += 1
        predicted, not_mapped = predicted_triples(record, kept_only)
        unmapped += not_mapped
        true = truth.relations[image_id]
        stated = truth.stated.get(image_id, set())
        false = truth.hallucinations.get(image_id, set())
        hits = predicted & true
        tp += len(hits)
        fp += len(predicted - true)
        n_truth += len(true)
        n_stated += len(stated)
        tp_stated += sum(bool(predicted & same_claims(t)) for t in stated)
        n_false += len(false)
        false_hit += sum(bool(predicted & same_claims(t)) for t in false)
        for _, _, p in hits:
            per_predicate[p]["tp"] += 1
        for _, _, p in predicted - true:
            per_predicate[p]["fp"] += 1
        for _, _, p in true - predicted:
            per_predicate[p]["fn"] += 1
    for counts in per_predicate.values():
        counts["precision"] = _ratio(counts["tp"], counts["tp"] + counts["fp"])
        counts["recall"] = _ratio(counts["tp"], counts["tp"] + counts["fn"])
    return {
        "kept_only": kept_only,
        "images": images,
        "unknown_images": unknown,
        "predicted": tp + fp,
        "true_positives": tp,
        "false_positives": fp,
        "unmapped_predicates": unmapped,
        "true_relations": n_truth,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, n_truth),
        "stated_relations": n_stated,
        "stated_found": tp_stated,
        "recall_stated": _ratio(tp_stated, n_stated),
        "hallucinations": n_false,
        "hallucinations_found": false_hit,
        "hallucinations_predicted": _ratio(false_hit, n_false),
        "per_predicate": per_predicate,
    }
