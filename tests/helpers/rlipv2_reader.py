"""A reader that indexes an RLIPv2 pre-training annotation file the way RLIPv2's own datasets do.

Written from reading github.com/JacobYuan7/RLIPv2 (datasets/mixed_dataset.py `MixedRelDetection`,
`generate_keep_names_freq`, `add_local_object_id`, `unique_name_dict_from_anno/_list`; datasets/coco.py
`CocoRLIPDetection`), step by step, without torch or their transforms: every dictionary lookup,
key access and path they make is made here in the same order, so a file that would raise a
KeyError/TypeError or open a wrong path in RLIPv2 does the same here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

VOCAB_KEYS = ("relationship_freq", "object_freq", "relationship_names", "object_names")


def name_index_from_items(items: list[dict[str, Any]], field: str) -> dict[Any, int]:
    """Names in order of first appearance -> 0, 1, ... (unique_name_dict_from_anno)."""
    index: dict[Any, int] = {}
    for item in items:
        if item[field] not in index:  # a list here raises TypeError: unhashable, as in RLIPv2
            index[item[field]] = len(index)
    return index


def local_ids(relationships: list[dict[str, Any]], objects: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(subject, object) positions in the objects list (add_local_object_id): KeyError on unknown ids."""
    position = {obj["object_id"]: i for i, obj in enumerate(objects)}
    return [(position[rel["subject_id"]], position[rel["object_id"]]) for rel in relationships]


def vocabulary_from_annotations(annotations: list[dict[str, Any]]) -> dict[str, Any]:
    """The vocabulary MixedRelDetection's ConcatDataset builds online (generate_keep_names_freq)."""
    objects: dict[str, int] = {}
    relationships: dict[str, int] = {}
    for anno in annotations:
        local_ids(anno["relationships"], anno["objects"])
        for obj in anno["objects"]:
            objects[obj["names"]] = objects.get(obj["names"], 0) + 1
        for rel in anno["relationships"]:
            relationships[rel["predicate"]] = relationships.get(rel["predicate"], 0) + 1
    relationships = dict(sorted(relationships.items(), key=lambda kv: kv[1], reverse=True))
    objects = dict(sorted(objects.items(), key=lambda kv: kv[1], reverse=True))
    return {
        "relationship_names": list(relationships),
        "object_names": list(objects),
        "relationship_freq": relationships,
        "object_freq": objects,
    }


class MixedRelReader:
    """datasets/mixed_dataset.py MixedRelDetection (img_set 'pretrain'), without transforms."""

    def __init__(
        self,
        anno_file: Path,
        datasets: list[str],
        keep_names_freq_file: Path | None = None,
        relation_threshold: float = 0.0,
        use_all_text_labels: bool = False,
        vg_folder: Path | None = None,
        coco2017_folder: Path | None = None,
        o365_folder: Path | None = None,
        num_queries: int = 200,
    ):
        self.vg_folder = vg_folder if "vg" in datasets else None
        self.coco2017_folder = coco2017_folder if "coco2017" in datasets else None
        self.o365_folder = o365_folder if "o365" in datasets else None
        if "o365" in datasets:
            self.o365_paths = json.loads((o365_folder / "image_id_to_filepath.json").read_text())
        self.annotations = json.loads(Path(anno_file).read_text())
        self.num_pairs = num_queries // 2
        self.use_all_text_labels = use_all_text_labels
        if relation_threshold > 0.0:
            for anno in self.annotations:
                anno["relationships"] = [
                    rel
                    for rel in anno["relationships"]
                    if "confidence" not in rel or rel["confidence"] >= relation_threshold
                ]
        if keep_names_freq_file is not None:
            vocab = json.loads(Path(keep_names_freq_file).read_text())
            self.relationship_freq, self.object_freq, self.relationship_names, self.object_names = (
                vocab[key] for key in VOCAB_KEYS
            )
        self.ids = [i for i, anno in enumerate(self.annotations) if len(anno["relationships"])]

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, anno: dict[str, Any]) -> Path:
        if "dataset" not in anno:
            return self.vg_folder / (str(anno["image_id"]) + ".jpg")
        if anno["dataset"] == "coco2017":
            name = str(anno["image_id"]).zfill(12) + ".jpg"
            split = anno.get("data_split", "train2017")
            return self.coco2017_folder / split / name
        if anno["dataset"] == "o365":
            return self.o365_folder / self.o365_paths[str(anno["image_id"])]
        raise AssertionError(f"RLIPv2 leaves the image unset for dataset {anno['dataset']!r}")

    def __getitem__(self, idx: int) -> dict[str, Any]:
        anno = self.annotations[self.ids[idx]]
        path = self.image_path(anno)
        with Image.open(path) as image:  # opened first, as in RLIPv2
            size = image.convert("RGB").size
        return read_item(anno, path, size, self.num_pairs, self._names(anno))

    def _names(self, anno: dict[str, Any]) -> tuple[dict[Any, int], dict[Any, int]]:
        if self.use_all_text_labels:
            return (
                {name: i for i, name in enumerate(self.object_names)},
                {name: i for i, name in enumerate(self.relationship_names)},
            )
        relationships = anno["relationships"][: self.num_pairs]
        return name_index_from_items(anno["objects"], "names"), name_index_from_items(
            relationships, "predicate"
        )


class CocoRLIPReader(MixedRelReader):
    """datasets/coco.py CocoRLIPDetection: the vocabulary file is required, no empty-image filter,
    the image is `coco2017_folder/{image_id:012d}.jpg` (the split folder given as the COCO folder)."""

    def __init__(self, anno_file: Path, keep_names_freq_file: Path, coco2017_folder: Path, **kwargs: Any):
        super().__init__(
            anno_file, ["coco2017"], keep_names_freq_file, coco2017_folder=coco2017_folder, **kwargs
        )
        self.ids = list(range(len(self.annotations)))

    def image_path(self, anno: dict[str, Any]) -> Path:
        if "dataset" in anno and anno["dataset"] == "coco2017":
            return self.coco2017_folder / (str(anno["image_id"]).zfill(12) + ".jpg")
        raise AssertionError("CocoRLIPDetection opens no image for this item")


def read_item(
    anno: dict[str, Any],
    path: Path,
    size: tuple[int, int],
    num_pairs: int,
    names: tuple[dict[Any, int], dict[Any, int]],
) -> dict[str, Any]:
    """What __getitem__ builds before its transforms: boxes (x0, y0, x1, y1 clamped to the image),
    box labels, and one entry per distinct (subject, object) pair with its predicate labels."""
    objects, relationships = anno["objects"], anno["relationships"]
    width, height = size
    relationships = relationships[:num_pairs]
    boxes = [
        [
            min(max(o["x"], 0), width),
            min(max(o["y"], 0), height),
            min(max(o["x"] + o["w"], 0), width),
            min(max(o["y"] + o["h"], 0), height),
        ]
        for o in objects
    ]
    object_index, predicate_index = names
    labels = [(i, object_index[o["names"]]) for i, o in enumerate(objects)]
    pairs: list[tuple[int, int]] = []
    verb_labels: list[list[int]] = []
    for (subject, obj), rel in zip(local_ids(relationships, objects), relationships):
        if (subject, obj) in pairs:
            verb_labels[pairs.index((subject, obj))][predicate_index[rel["predicate"]]] = 1
            continue
        pairs.append((subject, obj))
        row = [0] * len(predicate_index)
        row[predicate_index[rel["predicate"]]] = 1
        verb_labels.append(row)
    return {
        "image_id": anno["image_id"],
        "path": path,
        "size": (width, height),
        "boxes": boxes,
        "labels": labels,
        "pairs": pairs,
        "verb_labels": verb_labels,
        "obj_classes": list(object_index),
        "verb_classes": list(predicate_index),
    }
