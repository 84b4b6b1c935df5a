"""`sgpipe convert vg`: Visual Genome scene graphs -> training shards (dataset "vg").

Reads either VG file format, streamed with ijson (the real files are hundreds of MB):
- scene_graphs.json: [{image_id, objects: [{object_id, x, y, w, h, names}], relationships:
  [{relationship_id, predicate, subject_id, object_id}]}]
- relationships.json: [{image_id, relationships: [{predicate, subject: {object_id, x, y, w, h, name|names},
  object: {...}}]}] (the objects are the relationships' ends).
Boxes take the first name, lowercased, as category; category ids are assigned in order of first
appearance and listed in OUT/categories.json. Boxes are clipped to the image; empty or nameless boxes
and relations whose ends were dropped are counted, not fatal. Relations are ground truth: confidence
1.0, kept true, one triplet per distinct (subject category, predicate, object category), support = the
number of annotated relations stating it. Images: `{image_id}.jpg` under --images, its VG_100K/ or
VG_100K_2/ subfolders (image_data.json's url names the right one); sizes from image_data.json when
given, else from the image header. A missing image gets status failed_missing.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterator

import sgpipe
from sgpipe.errors import FAILED_DECODE, FAILED_DUPLICATE_ID, FAILED_MISSING, OK, SgpipeError
from sgpipe.records import Box, Relation, Sample, Triplet, sample_key
from sgpipe.storage import Location

DATASET = "vg"
SUBFOLDERS = ("", "VG_100K", "VG_100K_2")


class CategoryVocabulary:
    """Category name -> id (1, 2, ... in order of first appearance) with box counts."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def id(self, name: str) -> int:
        if name not in self.ids:
            self.ids[name] = len(self.ids) + 1
        self.counts[name] = self.counts.get(name, 0) + 1
        return self.ids[name]

    def to_json(self) -> list[dict[str, Any]]:
        return [{"id": i, "name": n, "count": self.counts[n]} for n, i in self.ids.items()]


def clean_text(text: Any) -> str:
    return re.sub(r"\s+", " ", str(text or "")).strip().lower()


def _object_name(obj: dict[str, Any]) -> str:
    names = obj.get("names") or ([obj["name"]] if obj.get("name") else [])
    return clean_text(names[0]) if names else ""


def _raw_objects(entry: dict[str, Any]) -> list[dict[str, Any]]:
    if "objects" in entry:
        return entry["objects"]
    ends = []  # relationships.json: the objects are the relationships' subjects and objects
    for rel in entry.get("relationships", []):
        ends += [rel["subject"], rel["object"]]
    return ends


def _raw_relation_ends(rel: dict[str, Any]) -> tuple[int, int]:
    if "subject_id" in rel:
        return rel["subject_id"], rel["object_id"]
    return rel["subject"]["object_id"], rel["object"]["object_id"]


def build_boxes(
    entry: dict[str, Any], width: int, height: int, vocab: CategoryVocabulary, sample: Sample
) -> dict[int, str]:
    """Fill `sample.objects`; returns object id -> raw name (for the triplets' surface texts)."""
    names: dict[int, str] = {}
    for obj in _raw_objects(entry):
        object_id = obj["object_id"]
        if object_id in names:
            continue  # relationships.json repeats an object for each relationship it is part of
        name = _object_name(obj)
        x0, y0 = max(0.0, float(obj["x"])), max(0.0, float(obj["y"]))
        x1, y1 = (
            min(float(width), float(obj["x"]) + float(obj["w"])),
            min(float(height), float(obj["y"]) + float(obj["h"])),
        )
        if not name or x1 <= x0 or y1 <= y0:
            sample.count("vg_boxes_dropped")
            continue
        if (x0, y0, x1, y1) != (obj["x"], obj["y"], obj["x"] + obj["w"], obj["y"] + obj["h"]):
            sample.count("vg_boxes_clipped")
        names[object_id] = (obj.get("names") or [obj.get("name")])[0]
        sample.objects.append(Box(object_id, name, vocab.id(name), [x0, y0, x1 - x0, y1 - y0]))
    return names


def add_given_relation(
    sample: Sample,
    triplets: dict[tuple[str, str, str], Triplet],
    categories: dict[int, str],
    ends: tuple[int, int, str],
    texts: tuple[str, str, str],
    confidence: float = 1.0,
    kept: bool = True,
) -> None:
    """A relation a label file states (no caption behind it): tag score 1, and one triplet per
    (subject category, predicate, object category), its support the number of relations stating it."""
    subject_id, object_id, predicate = ends
    lemma = (categories[subject_id], predicate, categories[object_id])
    triplet = triplets.get(lemma)
    if triplet is None:
        triplet = Triplet(*lemma, *texts, id=len(triplets), support=0)
        triplets[lemma] = triplet
    triplet.support += 1
    sample.relations.append(
        Relation(
            len(sample.relations), subject_id, object_id, predicate, triplet.id, 1.0, confidence, kept, texts[1]
        )
    )


def build_relations(entry: dict[str, Any], names: dict[int, str], sample: Sample) -> None:
    categories = {b.id: b.category for b in sample.objects}
    triplets: dict[tuple[str, str, str], Triplet] = {}
    seen: set[tuple[int, int, str]] = set()
    for rel in entry.get("relationships", []):
        subject_id, object_id = _raw_relation_ends(rel)
        predicate = clean_text(rel.get("predicate"))
        if not predicate or subject_id not in categories or object_id not in categories:
            sample.count("vg_relations_dropped")
            continue
        if (subject_id, object_id, predicate) in seen:
            sample.count("vg_relations_duplicate")
            continue
        seen.add((subject_id, object_id, predicate))
        texts = (str(names[subject_id]).strip(), str(rel["predicate"]).strip(), str(names[object_id]).strip())
        add_given_relation(sample, triplets, categories, (subject_id, object_id, predicate), texts)
    sample.triplets = list(triplets.values())


def load_image_data(path: Path | None) -> dict[int, dict[str, Any]]:
    if path is None:
        return {}
    if not Path(path).is_file():
        raise SgpipeError(f"image data file {path} does not exist")
    return {row["image_id"]: row for row in json.loads(Path(path).read_text())}


def find_image(images: Path, image_id: int, info: dict[str, Any]) -> Path | None:
    candidates = []
    url = info.get("url")
    if url:
        candidates.append(images.joinpath(*url.rsplit("/", 2)[-2:]))  # .../VG_100K_2/1.jpg
        candidates.append(images / url.rsplit("/", 1)[-1])
    candidates += [images / sub / f"{image_id}.jpg" for sub in SUBFOLDERS]
    return next((c for c in candidates if c.is_file()), None)


def _header_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as image:  # reads the header only
            return image.size
    except OSError:
        return None


def vg_sample(entry: dict[str, Any], images: Path, info: dict[str, Any], vocab: CategoryVocabulary) -> Sample:
    image_id = int(entry["image_id"])
    path = find_image(images, image_id, info)
    file_name = str(path.relative_to(images)) if path else f"{image_id}.jpg"
    sample = Sample(
        key=sample_key(DATASET, image_id),
        dataset=DATASET,
        image_id=image_id,
        file_name=file_name,
        width=int(info.get("width") or 0),
        height=int(info.get("height") or 0),
    )
    if path is None:
        sample.fail(FAILED_MISSING, f"no {image_id}.jpg under {images} (nor VG_100K/, VG_100K_2/)")
        return sample
    if not (sample.width and sample.height):
        size = _header_size(path)
        if size is None:
            sample.fail(FAILED_DECODE, f"{path} is not a readable image")
            return sample
        sample.width, sample.height = size
    sample.image_bytes = path.read_bytes()
    sample.image_ext = path.suffix.lstrip(".").lower() or "jpg"
    names = build_boxes(entry, sample.width, sample.height, vocab, sample)
    build_relations(entry, names, sample)
    return sample


def iter_entries(scene_graphs: Path) -> Iterator[dict[str, Any]]:
    import ijson

    if not Path(scene_graphs).is_file():
        raise SgpipeError(f"scene graphs file {scene_graphs} does not exist")
    with open(scene_graphs, "rb") as handle:
        try:
            yield from ijson.items(handle, "item", use_float=True)
        except ijson.JSONError as error:
            raise SgpipeError(f"{scene_graphs} is not a Visual Genome JSON list: {error}") from error


def convert_vg(
    images: Path,
    scene_graphs: Path,
    out: str | Location,
    image_data: Path | None = None,
    samples_per_shard: int = 1000,
    options: dict[str, Any] | None = None,
) -> str:
    """Convert Visual Genome scene graphs (+ images) into standard shards under `out`, a folder or an
    fsspec URL (written with the fsspec `options`)."""
    from sgpipe.output.atomic import write_json_atomic
    from sgpipe.output.finalize import finalize_outputs
    from sgpipe.output.writer import write_shards
    from sgpipe.tools.locations import new_corpus_folder

    if samples_per_shard < 1:
        raise SgpipeError(f"--samples-per-shard must be >= 1, got {samples_per_shard}")
    images = Path(images)
    if not images.is_dir():
        raise SgpipeError(f"images folder {images} does not exist")
    out = new_corpus_folder(out, options)
    sizes = load_image_data(image_data)
    parameters = {
        "source": "visual genome",
        "scene_graphs": Path(scene_graphs).name,
        "image_data": Path(image_data).name if image_data else None,
    }
    provenance = {
        "sgpipe": sgpipe.__version__,
        "source": "visual genome ground truth",
        "config_hash": hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:16],
        "models": {},
    }
    vocab = CategoryVocabulary()
    seen: set[int] = set()

    def samples() -> Iterator[Sample]:
        for entry in iter_entries(scene_graphs):
            image_id = int(entry["image_id"])
            if image_id in seen:
                sample = Sample(
                    key=sample_key(DATASET, image_id),
                    dataset=DATASET,
                    image_id=image_id,
                    file_name=f"{image_id}.jpg",
                    width=0,
                    height=0,
                )
                sample.fail(FAILED_DUPLICATE_ID, f"image id {image_id} appears again; the first entry wins")
            else:
                seen.add(image_id)
                sample = vg_sample(entry, images, sizes.get(image_id, {}), vocab)
            yield sample

    write_shards(out, samples(), samples_per_shard, provenance)
    if not seen:
        raise SgpipeError(f"{scene_graphs} holds no images")
    write_json_atomic(out / "categories.json", vocab.to_json())
    stats = finalize_outputs(out, DATASET)
    totals = stats["totals"]
    return (
        f"wrote {stats['shards']} shards to {out}: {totals['count']} images ({totals['successes']} ok, "
        f"{dict((k, v) for k, v in stats['status'].items() if k != OK)} failed), "
        f"{totals['n_objects']} boxes of {len(vocab.ids)} categories, {totals['n_relations']} relations"
    )
