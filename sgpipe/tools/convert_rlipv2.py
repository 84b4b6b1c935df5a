"""`sgpipe convert rlipv2`: RLIPv2's pseudo-label files -> standard shards.

Reads the JSON list RLIPv2's R-Tagger writes for COCO and Objects365 (and its merges with Visual
Genome; format in `sgpipe.tools.rlipv2_format`), streamed with ijson: multi-GB files never sit in
memory. Each item becomes one sample with the pipeline's record schema, so `sgpipe train` streams the
shards and `sgpipe stats` / `report` read them like sgpipe's own output:
- keys as sgpipe's runs write them: coco2017 -> `coco-{image_id:012d}`, o365 -> `o365-...`, an item
  without `dataset` -> `vg-...`;
- boxes keep RLIPv2's object ids and names (whitespace trimmed; a list of names gives its first);
  they are clipped to the image, empty or nameless ones dropped, counted; category ids in order of
  first appearance, listed in OUT/categories.json;
- relations keep RLIPv2's confidence; stored when >= the store threshold (0.05), `kept` when >= the
  keep threshold (0.20: RLIPv2's threshold20 files); a relation without confidence is ground truth
  (confidence 1.0, kept), as RLIPv2's loaders treat it; one whose subject or object is not an object
  of the item, or whose confidence is not a number in [0, 1], is dropped and counted; a repeated
  (subject, object, predicate) keeps its highest confidence. `tag_score` is 1.0 (RLIPv2 grounds by
  exact category, no score); triplets group relations by (subject category, predicate, object category);
- images are looked up where RLIPv2 opens them, under --images: `{data_split}/{id:012d}.jpg` or
  `{id:012d}.jpg` for COCO, `image_id_to_filepath.json`'s path for Objects365, `{id}.jpg` for VG;
  sizes from the image header. A missing image is a `failed_missing` row, an unreadable one
  `failed_decode`, a repeated (dataset, image id) `failed_duplicate_id`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

import sgpipe
from sgpipe.config import VerifyConfig
from sgpipe.errors import FAILED_DECODE, FAILED_DUPLICATE_ID, FAILED_MISSING, OK, SgpipeError
from sgpipe.records import Box, Sample, Triplet, sample_key
from sgpipe.storage import Location
from sgpipe.tools import rlipv2_format as rf
from sgpipe.tools.convert_vg import CategoryVocabulary, _header_size, add_given_relation

STORE_THRESHOLD = VerifyConfig.store_threshold
KEEP_THRESHOLD = VerifyConfig.keep_threshold


class O365Paths:
    """RLIPv2's `image_id_to_filepath.json`, loaded on the first Objects365 item."""

    def __init__(self, images: Path, path: Path | None):
        self.path = Path(path) if path else images / rf.O365_PATHS
        self.paths: dict[str, str] | None = None

    def get(self) -> dict[str, str]:
        if self.paths is None:
            if not self.path.is_file():
                raise SgpipeError(
                    f"Objects365 items need RLIPv2's {rf.O365_PATHS} (image id -> path under --images): "
                    f"{self.path} does not exist; give it with --image-paths"
                )
            self.paths = json.loads(self.path.read_text())
        return self.paths


def build_boxes(item: dict[str, Any], sample: Sample, vocab: CategoryVocabulary) -> None:
    ids: set[int] = set()
    for obj in item.get("objects") or []:
        if not isinstance(obj, dict):
            sample.count("rlipv2_boxes_dropped")
            continue
        name = rf.text_value(obj.get("names", obj.get("name")))
        x, y, w, h = (rf.finite_number(obj.get(k)) for k in ("x", "y", "w", "h"))
        object_id = obj.get("object_id")
        if not name or None in (x, y, w, h) or not isinstance(object_id, int) or object_id in ids:
            sample.count("rlipv2_boxes_dropped")
            continue
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(float(sample.width), x + w), min(float(sample.height), y + h)
        if x1 <= x0 or y1 <= y0:
            sample.count("rlipv2_boxes_dropped")
            continue
        if (x0, y0, x1, y1) != (x, y, x + w, y + h):
            sample.count("rlipv2_boxes_clipped")
        ids.add(object_id)
        sample.objects.append(Box(object_id, name, vocab.id(name), [x0, y0, x1 - x0, y1 - y0]))


def _confidence(rel: dict[str, Any], sample: Sample) -> float | None:
    """RLIPv2's confidence; 1.0 for a relation without one (ground truth); None when unusable."""
    if "confidence" not in rel:
        sample.count("rlipv2_relations_without_confidence")
        return 1.0
    confidence = rf.finite_number(rel["confidence"])
    return confidence if confidence is not None and 0.0 <= confidence <= 1.0 else None


def build_relations(item: dict[str, Any], sample: Sample, store: float, keep: float) -> None:
    categories = {b.id: b.category for b in sample.objects}
    best: dict[tuple[int, int, str], tuple[float, str]] = {}
    for rel in item.get("relationships") or []:
        if not isinstance(rel, dict):
            sample.count("rlipv2_relations_dropped")
            continue
        subject_id, object_id = rel.get("subject_id"), rel.get("object_id")
        predicate = rf.text_value(rel.get("predicate"))
        confidence = _confidence(rel, sample)
        known = all(isinstance(i, int) and i in categories for i in (subject_id, object_id))
        if not predicate or not known or confidence is None:
            sample.count("rlipv2_relations_dropped")
            continue
        if confidence < store:
            sample.count("rlipv2_relations_below_store_threshold")
            continue
        triple = (subject_id, object_id, predicate)
        if triple in best:
            sample.count("rlipv2_relations_duplicate")
            if confidence <= best[triple][0]:
                continue
        best[triple] = (confidence, str(rel.get("predicate")).strip())
    triplets: dict[tuple[str, str, str], Triplet] = {}
    for (subject_id, object_id, predicate), (confidence, raw) in best.items():
        texts = (categories[subject_id], raw, categories[object_id])
        ends = (subject_id, object_id, predicate)
        add_given_relation(sample, triplets, categories, ends, texts, confidence, confidence >= keep)
    sample.triplets = list(triplets.values())


def rlipv2_sample(
    item: dict[str, Any],
    images: Path,
    o365_paths: O365Paths,
    vocab: CategoryVocabulary,
    thresholds: tuple[float, float],
) -> Sample:
    dataset = rf.sgpipe_dataset(item.get("dataset"))
    paths = o365_paths.get() if item.get("dataset") == rf.O365 else None
    candidates = rf.image_candidates(item, images, paths)
    found = next(((path, relative) for path, relative in candidates if path.is_file()), None)
    image_id = item["image_id"]
    sample = Sample(
        key=sample_key(dataset, image_id),
        dataset=dataset,
        image_id=image_id,
        file_name=found[1] if found else (candidates[0][1] if candidates else str(image_id)),
        width=0,
        height=0,
    )
    if found is None:
        tried = ", ".join(relative for _, relative in candidates) or f"no entry in {o365_paths.path.name}"
        sample.fail(
            FAILED_MISSING, f"no image for {dataset} image {image_id} under {images} (tried: {tried})"
        )
        return sample
    size = _header_size(found[0])
    if size is None:
        sample.fail(FAILED_DECODE, f"{found[0]} is not a readable image")
        return sample
    sample.width, sample.height = size
    sample.image_bytes = found[0].read_bytes()
    sample.image_ext = found[0].suffix.lstrip(".").lower() or "jpg"
    build_boxes(item, sample, vocab)
    build_relations(item, sample, *thresholds)
    return sample


def _duplicate(item: dict[str, Any]) -> Sample:
    dataset, image_id = rf.sgpipe_dataset(item.get("dataset")), item["image_id"]
    sample = Sample(sample_key(dataset, image_id), dataset, image_id, str(image_id), 0, 0)
    sample.fail(FAILED_DUPLICATE_ID, f"{dataset} image id {image_id} appears again; the first entry wins")
    return sample


def convert_rlipv2(
    labels: Path,
    images: Path,
    out: str | Location,
    image_paths: Path | None = None,
    samples_per_shard: int = 1000,
    store_threshold: float = STORE_THRESHOLD,
    keep_threshold: float = KEEP_THRESHOLD,
    options: dict[str, Any] | None = None,
) -> str:
    """Convert an RLIPv2 pseudo-label file (+ its images) into standard shards under `out`, a folder
    or an fsspec URL (written with the fsspec `options`)."""
    from sgpipe.output.atomic import write_json_atomic
    from sgpipe.output.finalize import finalize_outputs
    from sgpipe.output.writer import write_shards
    from sgpipe.tools.locations import new_corpus_folder

    if samples_per_shard < 1:
        raise SgpipeError(f"--samples-per-shard must be >= 1, got {samples_per_shard}")
    if not 0.0 <= store_threshold <= keep_threshold <= 1.0:
        raise SgpipeError(
            f"thresholds must satisfy 0 <= store ({store_threshold}) <= keep ({keep_threshold}) <= 1"
        )
    images = Path(images)
    if not images.is_dir():
        raise SgpipeError(f"images folder {images} does not exist")
    out = new_corpus_folder(out, options)
    parameters = {
        "source": "rlipv2 pseudo-labels",
        "labels": Path(labels).name,
        "thresholds": [store_threshold, keep_threshold],
    }
    provenance = {
        "sgpipe": sgpipe.__version__,
        "source": f"RLIPv2 pseudo-labels ({Path(labels).name})",
        "config_hash": hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:16],
        "models": {},
        "thresholds": {"store": store_threshold, "keep": keep_threshold},
    }
    vocab = CategoryVocabulary()
    o365_paths = O365Paths(images, image_paths)
    seen: set[tuple[str, int]] = set()
    datasets: dict[str, int] = {}

    def samples() -> Iterator[Sample]:
        for item in rf.iter_items(labels):
            identity = (rf.sgpipe_dataset(item.get("dataset")), item["image_id"])
            if identity in seen:
                sample = _duplicate(item)
            else:
                seen.add(identity)
                sample = rlipv2_sample(item, images, o365_paths, vocab, (store_threshold, keep_threshold))
            datasets[sample.dataset] = datasets.get(sample.dataset, 0) + 1
            yield sample

    write_shards(out, samples(), samples_per_shard, provenance)
    if not seen:
        raise SgpipeError(f"{labels} holds no images")
    write_json_atomic(out / "categories.json", vocab.to_json())
    stats = finalize_outputs(out, next(iter(datasets)) if len(datasets) == 1 else "mixed")
    totals = stats["totals"]
    statuses = [f"{totals['successes']} ok"] + [f"{k} {v}" for k, v in stats["status"].items() if k != OK]
    return (
        f"wrote {stats['shards']} shards to {out}: {totals['count']} images "
        f"({', '.join(f'{k} {v}' for k, v in datasets.items())}; {', '.join(statuses)}), "
        f"{totals['n_objects']} boxes of {len(vocab.ids)} categories, {totals['n_relations']} relations "
        f"({totals['n_kept']} kept at confidence >= {keep_threshold})"
    )
