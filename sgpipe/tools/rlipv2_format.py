"""RLIPv2's pre-training annotation format, the facts both `export --format rlipv2` and
`convert rlipv2` rely on.

One JSON list, one Visual Genome-style item per image, as RLIPv2's R-Tagger writes it and its
pre-training datasets (`MixedRelDetection` in datasets/mixed_dataset.py, `CocoRLIPDetection` in
datasets/coco.py) read it:

    {"image_id": int, "dataset": "coco2017" | "o365", "data_split": "train2017" | "val2017" | "train" | "val",
     "objects": [{"object_id", "x", "y", "w", "h", "names": "person"}],
     "relationships": [{"relationship_id", "predicate", "subject_id", "object_id", "confidence"}]}

- `names` is one string: the loaders use it as a dictionary key.
- `predicate` is the surface relation text ("sitting on"), as RLIPv2's labels and vocabulary hold it
  (`relation_text`).
- The image is found from `dataset`: coco2017 -> `COCO/{data_split}/{image_id:012d}.jpg`
  (datasets/coco.py: `COCO/{image_id:012d}.jpg`); o365 -> `O365/` + `image_id_to_filepath.json`
  [str(image_id)] (a path like `train/patch8/objects365_v1_00420917.jpg`); no `dataset` -> a
  Visual Genome item, `VG/images/{image_id}.jpg`.
- A relationship with `confidence` is dropped below the loader's `relation_threshold`; one without
  `confidence` is ground truth and always kept (so an unverified relation carries no key at all,
  never `null`). `subject_id`/`object_id` must name objects of the same item.
"""

from __future__ import annotations

import math
import re
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from sgpipe.errors import SgpipeError
from sgpipe.storage import Location, location, open_binary

COCO = "coco2017"
O365 = "o365"
O365_PATHS = "image_id_to_filepath.json"  # the file RLIPv2 reads in its Objects365 folder
DEFAULT_SPLIT = {COCO: "train2017", O365: "train"}
_COCO_SPLIT = re.compile(r"^(train|val|test|unlabeled)20\d\d$")
_O365_SPLITS = ("train", "val")
# which of a record's two relation texts `relation_text` gives: "lemma" (`relations[].predicate`,
# "sit on") or "surface" (the triplet's `predicate_text`, "sitting on")
RELATION_TEXT_FORM = "surface"
# RLIPv2 dataset value -> sgpipe dataset name (keys `coco-...`, `o365-...` as sgpipe's own runs write)
SGPIPE_DATASET = {COCO: "coco", O365: "o365", None: "vg"}


def text_value(value: Any) -> str:
    """A name or predicate as RLIPv2's files write it (a string, or a list whose first entry counts),
    whitespace runs collapsed."""
    if isinstance(value, list):
        value = value[0] if value else ""
    return re.sub(r"\s+", " ", str(value or "")).strip()


def finite_number(value: Any) -> float | None:
    """A JSON number as a float; None for anything else (a string, a bool, NaN, infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def iter_items(labels: str | Location, options: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """The file's items one by one (a path or an fsspec URL); a file that is not a JSON list is one
    clear error."""
    import ijson

    labels = location(labels, options)
    if isinstance(labels, Path) and not labels.is_file():
        raise SgpipeError(f"pseudo-label file {labels} does not exist")
    with open_binary(labels) as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        if not head.startswith(b"["):
            raise SgpipeError(f"{labels} is not RLIPv2's format: a JSON list of per-image items")
        handle.seek(0)
        try:
            for index, item in enumerate(ijson.items(handle, "item", use_float=True)):
                image_id = item.get("image_id") if isinstance(item, dict) else None
                if isinstance(image_id, bool) or not isinstance(image_id, int) or image_id < 0:
                    raise SgpipeError(f"{labels}: item {index} has no integer image_id: {str(item)[:200]}")
                yield item
        except ijson.JSONError as error:
            raise SgpipeError(f"{labels} is not valid JSON: {error}") from error


def rlipv2_dataset(name: str) -> str | None:
    """sgpipe's `source.name` -> RLIPv2's `dataset` value; None for a source RLIPv2 reads as Visual Genome."""
    lowered = name.lower()
    if lowered.startswith("coco"):
        return COCO
    if lowered.startswith(("o365", "objects365")):
        return O365
    return None


def sgpipe_dataset(value: Any) -> str:
    """RLIPv2's `dataset` value (None when absent) -> sgpipe's dataset name."""
    if value not in SGPIPE_DATASET:
        choices = ", ".join(repr(v) for v in SGPIPE_DATASET if v) + " or none (Visual Genome)"
        raise SgpipeError(f"unsupported RLIPv2 dataset {value!r}. Choose from: {choices}")
    return SGPIPE_DATASET[value]


def default_split(dataset: str | None, images_folder: str | None) -> str | None:
    """The split of a run whose `source.images` was `images_folder` (`.../val2017` -> "val2017")."""
    if dataset is None:
        return None
    name = PurePosixPath(str(images_folder or "").replace("\\", "/").rstrip("/")).name
    if dataset == COCO and _COCO_SPLIT.match(name):
        return name
    if dataset == O365 and name in _O365_SPLITS:
        return name
    return DEFAULT_SPLIT[dataset]


def o365_path(split: str, file_name: str) -> str:
    """The image's path under RLIPv2's Objects365 folder: `{split}/patchN/name.jpg`, the layout its
    `image_id_to_filepath.json` describes (the file name's last two parts, as sgpipe resolves them)."""
    parts = PurePosixPath(file_name.replace("\\", "/")).parts[-2:]
    return "/".join((split, *parts))


def coco_file_name(image_id: int) -> str:
    return f"{int(image_id):012d}.jpg"


def image_candidates(
    item: dict[str, Any], images: Path, o365_paths: dict[str, str] | None
) -> list[tuple[Path, str]]:
    """Where RLIPv2's loaders would open the item's image, as (path, path relative to `images`)."""
    image_id, dataset = item["image_id"], item.get("dataset")
    if dataset == COCO:
        name = coco_file_name(image_id)
        split = item.get("data_split")
        relative = [f"{split}/{name}"] if isinstance(split, str) and split else []
        relative.append(name)  # datasets/coco.py: the split folder itself given as the COCO folder
    elif dataset == O365:
        path = (o365_paths or {}).get(str(image_id))
        relative = [path] if path else []
    else:
        relative = [f"{image_id}.jpg", f"images/{image_id}.jpg"]
    return [(images.joinpath(*PurePosixPath(r).parts), r) for r in relative]


def relation_text(record: dict[str, Any], relation: dict[str, Any]) -> str:
    """The text an RLIPv2 item carries as a relation's `predicate`, of the form `RELATION_TEXT_FORM`: the
    surface relation text SceneGraphParser writes and RLIPv2's labels hold ("sitting on", not the lemma
    "sit on"): the relation's `predicate_text`; in records written before that field, its triplet's
    `predicate_text`; failing both, its `predicate`. `export --format rlipv2` writes it and `sgpipe compare`
    reads sgpipe corpora through it, so the two never diverge."""
    if relation.get("predicate_text"):
        return relation["predicate_text"]
    for triplet in record.get("triplets", []):
        if triplet.get("id") == relation.get("triplet_id") and triplet.get("predicate_text"):
            return triplet["predicate_text"]
    return relation["predicate"]


def rlipv2_item(
    record: dict[str, Any],
    relations: list[dict[str, Any]],
    next_relationship_id: int,
    dataset: str | None,
    split: str | None,
) -> dict[str, Any]:
    """One sgpipe record (and the relations to export) as an RLIPv2 item."""
    item: dict[str, Any] = {"image_id": record["image_id"]}
    if dataset is not None:
        item["dataset"] = dataset
        item["data_split"] = split
    item["file_name"] = record.get("file_name")
    item["width"] = record.get("width")
    item["height"] = record.get("height")
    item["objects"] = [
        {
            "object_id": o["id"],
            "x": o["bbox"][0],
            "y": o["bbox"][1],
            "w": o["bbox"][2],
            "h": o["bbox"][3],
            "names": o["category"],
        }
        for o in record.get("objects", [])
    ]
    item["relationships"] = []
    for i, r in enumerate(relations):
        relationship = {
            "relationship_id": next_relationship_id + i,
            "predicate": relation_text(record, r),
            "subject_id": r["subject_id"],
            "object_id": r["object_id"],
        }
        if r.get("confidence") is not None:
            relationship["confidence"] = r["confidence"]
        item["relationships"].append(relationship)
    return item
