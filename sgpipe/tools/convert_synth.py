"""`sgpipe convert synth`: the synthetic world's ground truth -> training shards.

True relations are stored with confidence 1.0 and kept true; the relations that the captions
state falsely (hallucinations.json) are stored too, with confidence 0.0 and kept false, so
training and evaluation have real hard negatives: the mistakes a captioner makes about that image.

The world states 9 canonical predicates, but the pipeline's verifier sees the parser's lemmas of
the captions' phrasings ("cover", "beside", "to left of", "sit on"). With `paraphrases` (the
default) every relation is also written in each phrasing that `sgpipe.synth.truth` maps back to
its canonical predicate, with the same truth, so a verifier trained on these shards knows the
predicate texts it will be asked about.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import sgpipe
from sgpipe.errors import SgpipeError
from sgpipe.records import Box, Caption, Relation, Sample, sample_key
from sgpipe.storage import Location

DATASET = "synth"
# Phrasings the parser gives the world's captions; each is kept where canonical_predicate agrees.
PHRASINGS = (
    "above",
    "over",
    "below",
    "under",
    "beneath",
    "underneath",
    "left of",
    "to left of",
    "right of",
    "to right of",
    "next to",
    "beside",
    "on",
    "on top of",
    "sit on",
    "rest on",
    "lie on",
    "inside",
    "in",
    "within",
    "inside of",
    "in front of",
    "cover",
    "hide",
    "behind",
    "hide behind",
    "cover by",
    "hide by",
)


def predicate_phrasings() -> dict[str, list[str]]:
    """Canonical predicate -> its phrasings (the canonical form first)."""
    from sgpipe.synth.truth import canonical_predicate

    out: dict[str, list[str]] = defaultdict(list)
    for phrase in PHRASINGS:
        canonical = canonical_predicate(phrase)
        if canonical is not None:
            out[canonical].append(phrase)
    return {c: sorted(phrases, key=lambda p: p != c) for c, phrases in out.items()}


def _load(path: Path) -> Any:
    if not path.is_file():
        raise SgpipeError(f"{path} is missing: is {path.parent.parent} a folder written by `sgpipe synth`?")
    return json.loads(path.read_text())


def _captions(data: Any) -> dict[int, list[Caption]]:
    """COCO captions format ({"annotations": [{id, image_id, caption}]}) or a plain list of those."""
    rows = data.get("annotations", []) if isinstance(data, dict) else data
    out: dict[int, list[Caption]] = defaultdict(list)
    for row in rows:
        out[row["image_id"]].append(
            Caption(id=row["id"], text=row.get("caption", row.get("text", "")), source="annotation")
        )
    return out


def synth_samples(world: Path, paraphrases: bool = True) -> list[Sample]:
    """One ground-truth sample per image of the world, in image-id order, image bytes included."""
    world = Path(world)
    ann = world / "annotations"
    instances = _load(ann / "instances.json")
    true_rel = {row["image_id"]: row["relations"] for row in _load(ann / "relations.json")}
    false_rel: dict[int, list[dict]] = defaultdict(list)
    for row in _load(ann / "hallucinations.json"):
        false_rel[row["image_id"]].append(row)
    captions = _captions(_load(ann / "captions.json")) if (ann / "captions.json").is_file() else {}
    categories = {c["id"]: c["name"] for c in instances["categories"]}
    boxes: dict[int, list[Box]] = defaultdict(list)
    for a in instances["annotations"]:
        boxes[a["image_id"]].append(
            Box(
                a["id"],
                categories[a["category_id"]],
                a["category_id"],
                [float(v) for v in a["bbox"]],
                int(a.get("iscrowd", 0)),
            )
        )
    phrasings = predicate_phrasings() if paraphrases else {}
    samples = []
    for image in sorted(instances["images"], key=lambda i: i["id"]):
        image_id = image["id"]
        path = world / "images" / image["file_name"]
        sample = Sample(
            key=sample_key(DATASET, image_id),
            dataset=DATASET,
            image_id=image_id,
            file_name=image["file_name"],
            width=image["width"],
            height=image["height"],
            objects=boxes[image_id],
            captions=captions.get(image_id, []),
            image_bytes=path.read_bytes(),
            image_ext=path.suffix.lstrip(".").lower() or "jpg",
        )
        seen: set[tuple[int, int, str]] = set()
        for rel, truth in [(r, True) for r in true_rel.get(image_id, [])] + [
            (r, False) for r in false_rel[image_id]
        ]:
            for phrase in phrasings.get(rel["predicate"], [rel["predicate"]]):
                triple = (rel["subject_id"], rel["object_id"], phrase)
                if triple in seen:
                    continue  # several captions may state the same false relation
                seen.add(triple)
                sample.relations.append(
                    Relation(
                        id=len(sample.relations),
                        subject_id=triple[0],
                        object_id=triple[1],
                        predicate=phrase,
                        predicate_text=phrase,
                        triplet_id=0,
                        tag_score=1.0,
                        confidence=1.0 if truth else 0.0,
                        kept=truth,
                    )
                )
        samples.append(sample)
    return samples


def convert_synth(
    world: Path,
    out: str | Location,
    samples_per_shard: int = 100,
    paraphrases: bool = True,
    options: dict[str, Any] | None = None,
) -> str:
    """Write the world's images and relations as shards (`write_shards`), plus shardindex/stats, into
    `out`, a folder or an fsspec URL (written with the fsspec `options`)."""
    from sgpipe.output.finalize import finalize_outputs
    from sgpipe.output.writer import write_shards
    from sgpipe.tools.locations import new_corpus_folder

    if samples_per_shard < 1:
        raise SgpipeError("samples_per_shard must be >= 1")
    samples = synth_samples(world, paraphrases)
    if not samples:
        raise SgpipeError(f"{world}: the world holds no images")
    provenance = {"sgpipe": sgpipe.__version__, "source": "synthetic ground truth", "world": Path(world).name}
    out = new_corpus_folder(out, options)
    write_shards(out, samples, samples_per_shard, provenance)
    stats = finalize_outputs(out, DATASET)
    n_true = sum(1 for s in samples for r in s.relations if r.kept)
    n_false = sum(1 for s in samples for r in s.relations if not r.kept)
    phrased = " (each in all its phrasings)" if paraphrases else ""
    return (
        f"wrote {stats['shards']} shards, {len(samples)} images, {n_true} true relations "
        f"(confidence 1.0) and {n_false} hallucinated ones (confidence 0.0, kept false){phrased} to {out}"
    )
