"""A COCO-format dataset made of every bad or unusual case, with the status each entry must get."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tests.corpus.images import CASES, jpeg_bytes

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}, {"id": 62, "name": "chair"}]
GOOD_CAPTION = "a dog sitting next to a person on a chair"

IMAGE_CASES = {  # image id: (file, expected status)
    1: ("good.jpg", "ok"),
    2: ("zero.jpg", "failed_decode"),
    3: ("truncated.jpg", "failed_decode"),
    4: ("text.jpg", "failed_decode"),
    5: ("alpha.png", "ok"),
    6: ("cmyk.jpg", "ok"),
    7: ("deep16.png", "ok"),
    8: ("gray.png", "ok"),
    9: ("rotated.jpg", "ok"),
    10: ("wrongsize.jpg", "failed_size_mismatch"),
    11: ("bomb.png", "failed_too_large"),
    12: ("with space ünï 名前.jpg", "ok"),
    13: ("absent.jpg", "failed_missing"),
}
CAPTION_CASES = {  # image id: caption text; every one of them is ok, some yield no triplets
    20: "",
    21: "a dog next to a person " + "and a very long clause " * 220,  # ~5,000 characters
    22: "un chien à côté d'une personne sur une chaise",
    23: "🐶🐶 ➡️ 🧍🪑",
    24: "?!... ;;; ---",
}
BOX_CASES = {  # image id: (boxes, expected kept boxes, expected counters)
    30: ([], 0, {}),
    31: ([(1, [2, 2, 10, 10])], 1, {}),
    32: ([(1 + (i % 2) * 17, [(i * 7) % 30, (i * 3) % 20, 8, 8]) for i in range(500)], 500, {}),
    33: (
        [
            (1, [-5, -5, 10, 10]),
            (18, [35, 25, 20, 20]),
            (1, [1, 1, -3, 4]),
            (1, [1, 1, 0, 4]),
            (1, [math.nan, 1, 3, 4]),
            (99, [1, 1, 3, 4]),
            (1, [100, 100, 5, 5]),
        ],
        2,
        {"box_clipped": 2, "box_zero_area": 2, "box_nan": 1, "box_unknown_category": 1, "box_outside": 1},
    ),
}
DUPLICATE_ID = 1  # a second entry for image 1: failed_duplicate_id


def expected_statuses() -> list[tuple[int, str]]:
    rows = [(i, status) for i, (_, status) in IMAGE_CASES.items()]
    rows.append((DUPLICATE_ID, "failed_duplicate_id"))
    rows += [(i, "ok") for i in CAPTION_CASES] + [(i, "ok") for i in BOX_CASES]
    return sorted(rows, key=lambda r: (r[0], r[1] == "failed_duplicate_id"))


def make_bad_dataset(root: Path) -> dict[str, Path]:
    images_dir = root / "images"
    images_dir.mkdir(parents=True)
    images, annotations, captions = [], [], []
    next_id = iter(range(1, 10**6))

    def add_box(image_id: int, category: int, bbox: list[float]) -> None:
        annotations.append(
            {
                "id": next(next_id),
                "image_id": image_id,
                "category_id": category,
                "bbox": bbox,
                "area": 1.0,
                "iscrowd": 0,
            }
        )

    for image_id, (name, _) in IMAGE_CASES.items():
        if name in CASES:
            make, size = CASES[name]
            (images_dir / name).write_bytes(make())
        else:
            size = (40, 30)
        images.append({"id": image_id, "file_name": name, "width": size[0], "height": size[1]})
        add_box(image_id, 18, [1, 1, 10, 10])
        add_box(image_id, 1, [15, 5, 10, 20])
    images.append({"id": DUPLICATE_ID, "file_name": "good.jpg", "width": 40, "height": 30})
    for image_id in list(CAPTION_CASES) + list(BOX_CASES):
        name = f"{image_id:04d}.jpg"
        (images_dir / name).write_bytes(jpeg_bytes(40, 30))
        images.append({"id": image_id, "file_name": name, "width": 40, "height": 30})
    for image_id, text in CAPTION_CASES.items():
        add_box(image_id, 18, [1, 1, 10, 10])
        add_box(image_id, 1, [15, 5, 10, 20])
        captions.append({"id": image_id * 10, "image_id": image_id, "caption": text})
    for image_id, (boxes, _, _) in BOX_CASES.items():
        for category, bbox in boxes:
            add_box(image_id, category, bbox)
    for image in images:
        if image["id"] not in CAPTION_CASES:
            captions.append({"id": next(next_id) + 10**6, "image_id": image["id"], "caption": GOOD_CAPTION})
    paths = {"images": images_dir, "instances": root / "instances.json", "captions": root / "captions.json"}
    paths["instances"].write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES})
    )
    paths["captions"].write_text(json.dumps({"annotations": captions}))
    return paths
