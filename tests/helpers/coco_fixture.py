"""A tiny COCO-format dataset written in the test: images, instances JSON, captions JSON."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.images import write_image

CATEGORIES = [
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 18, "name": "dog", "supercategory": "animal"},
    {"id": 2, "name": "bicycle", "supercategory": "vehicle"},
]

CAPTIONS = [
    "a man riding a bicycle next to a dog",
    "a dog sitting next to a person",
    "a person standing behind a bicycle",
]


def make_coco(
    root: Path, n_images: int = 6, width: int = 64, height: int = 48, subdir: str = "", captions: bool = True
) -> dict[str, Path]:
    """Write `root/images/...`, `root/instances.json`, `root/captions.json`; returns their paths.

    Image ids are 10, 20, ...; each image gets a person, a dog and a bicycle box and 3 captions.
    """
    images, annotations, caption_rows = [], [], []
    for i in range(n_images):
        image_id = 10 * (i + 1)
        file_name = f"{subdir}{image_id:012d}.jpg"
        write_image(root / "images" / file_name, width, height, seed=i + 1)
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for j, (category, bbox) in enumerate(
            [(1, [2, 2, 20, 30]), (18, [30, 20, 16, 12]), (2, [10, 25, 30, 20])]
        ):
            annotations.append(
                {
                    "id": image_id * 100 + j,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
        for k, text in enumerate(CAPTIONS):
            caption_rows.append({"id": image_id * 10 + k, "image_id": image_id, "caption": text})
    instances = {"info": {}, "images": images, "annotations": annotations, "categories": CATEGORIES}
    paths = {"root": root, "images": root / "images", "instances": root / "instances.json"}
    paths["instances"].write_text(json.dumps(instances))
    if captions:
        paths["captions"] = root / "captions.json"
        paths["captions"].write_text(json.dumps({"images": images, "annotations": caption_rows}))
    return paths


def make_coco_with_bad_images(root: Path) -> dict[str, Path]:
    """Five images (ids 10-50) of which 30 is not a JPEG (failed_decode) and 40 is missing (failed_missing)."""
    paths = make_coco(root, n_images=5)
    (paths["images"] / "000000000030.jpg").write_bytes(b"not a jpeg")
    (paths["images"] / "000000000040.jpg").unlink()
    return paths
