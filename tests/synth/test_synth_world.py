import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sgpipe.synth.layout import _overlap, _Palette
from sgpipe.synth.shapes import CATEGORIES, COLORS, shape_mask
from sgpipe.synth.world import generate_world

RATE = 0.3


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    generate_world(out, n_images=40, seed=5, hallucination_rate=RATE)
    return out


def _load(world: Path, name: str):
    return json.loads((world / "annotations" / name).read_text())


def _objects(world: Path) -> dict[int, dict[int, dict]]:
    """image id -> annotation id -> {box (x0, y0, x1, y1), category, color}."""
    inst = _load(world, "instances.json")
    names = {c["id"]: c["name"] for c in inst["categories"]}
    out: dict[int, dict[int, dict]] = {}
    for a in inst["annotations"]:
        x, y, w, h = a["bbox"]
        out.setdefault(a["image_id"], {})[a["id"]] = {
            "box": (x, y, x + w, y + h),
            "category": names[a["category_id"]],
            "color": a["color"],
        }
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_arguments_give_same_bytes(tmp_path):
    generate_world(tmp_path / "a", n_images=6, seed=11, hallucination_rate=0.4)
    generate_world(tmp_path / "b", n_images=6, seed=11, hallucination_rate=0.4)
    generate_world(tmp_path / "c", n_images=6, seed=12, hallucination_rate=0.4)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 6 + 5
    assert a == b
    assert a["images/000000000001.jpg"] != c["images/000000000001.jpg"]


def test_first_image_id_gives_disjoint_ids(tmp_path):
    generate_world(tmp_path / "val", n_images=3, seed=0, first_image_id=1000)
    inst = json.loads((tmp_path / "val" / "annotations" / "instances.json").read_text())
    assert [im["id"] for im in inst["images"]] == [1000, 1001, 1002]
    assert [im["file_name"] for im in inst["images"]][0] == "000000001000.jpg"
    assert (tmp_path / "val" / "images" / "000000001002.jpg").exists()


def test_coco_files_load_with_pycocotools(world):
    from pycocotools.coco import COCO

    instances = COCO(str(world / "annotations" / "instances.json"))
    captions = COCO(str(world / "annotations" / "captions.json"))
    assert len(instances.getImgIds()) == 40
    assert sorted(c["name"] for c in instances.loadCats(instances.getCatIds())) == sorted(CATEGORIES)
    ann_ids = [a["id"] for a in instances.dataset["annotations"]]
    assert len(ann_ids) == len(set(ann_ids))
    for image_id in instances.getImgIds():
        info = instances.loadImgs(image_id)[0]
        with Image.open(world / "images" / info["file_name"]) as im:
            assert im.format == "JPEG" and im.size == (info["width"], info["height"]) == (320, 320)
        anns = instances.loadAnns(instances.getAnnIds(imgIds=image_id))
        assert 2 <= len(anns) <= 5
        names = [(a["color"], a["category_id"]) for a in anns]
        assert len(names) == len(set(names)), "every shape must be nameable by colour + category"
        for a in anns:
            x, y, w, h = a["bbox"]
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 320 and y + h <= 320
            assert 0 < a["area"] <= w * h and a["iscrowd"] == 0
        assert 4 <= len(captions.getAnnIds(imgIds=image_id)) <= 6


def test_shapes_fill_their_boxes_exactly():
    for category in CATEGORIES:
        for size in (14, 37, 90, 151):
            box = (5, 9, 5 + size, 9 + size)
            ys, xs = np.nonzero(shape_mask(category, box, (200, 200)))
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == box, category


def _box_predicates(a, b) -> set[str]:
    """The documented definitions, written out again independently of the generator."""
    xov = min(a[2], b[2]) - max(a[0], b[0])
    yov = min(a[3], b[3]) - max(a[1], b[1])
    aw, ah, bw, bh = a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1]
    found = set()
    if a[3] <= b[1] and xov >= 0.5 * min(aw, bw):
        found.add("above")
    if b[3] <= a[1] and xov >= 0.5 * min(aw, bw):
        found.add("below")
    if a[2] <= b[0] and yov >= 0.5 * min(ah, bh):
        found.add("left of")
        if b[0] - a[2] <= 0.5 * min(aw, bw):
            found.add("next to")
    if b[2] <= a[0] and yov >= 0.5 * min(ah, bh):
        found.add("right of")
        if a[0] - b[2] <= 0.5 * min(aw, bw):
            found.add("next to")
    if 0 <= b[1] - a[3] <= 2 and b[0] <= (a[0] + a[2]) / 2 <= b[2]:
        found.add("on")
    if b[0] < a[0] and a[2] < b[2] and b[1] < a[1] and a[3] < b[3]:
        found.add("inside")
    return found


def _contains(a, b) -> bool:
    return a[0] <= b[0] and b[2] <= a[2] and a[1] <= b[1] and b[3] <= a[3]


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out &= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


def test_relations_are_exactly_those_the_geometry_defines(world):
    objects = _objects(world)
    listed = {
        e["image_id"]: {(r["subject_id"], r["object_id"], r["predicate"]) for r in e["relations"]}
        for e in _load(world, "relations.json")
    }
    predicates = Counter()
    n_depth = 0
    for image_id, objs in objects.items():
        truth = listed[image_id]
        predicates.update(p for _, _, p in truth)
        masks = {k: shape_mask(o["category"], o["box"], (320, 320)) for k, o in objs.items()}
        pixels = np.asarray(Image.open(world / "images" / f"{image_id:012d}.jpg").convert("RGB"), dtype=int)
        for s, a in objs.items():
            for o, b in objs.items():
                if s == o:
                    continue
                depth = {p for p in ("in front of", "behind") if (s, o, p) in truth}
                listed_here = {p for ss, oo, p in truth if (ss, oo) == (s, o)}
                assert listed_here - depth == _box_predicates(a["box"], b["box"])
                shared = masks[s] & masks[o]
                nested = _contains(a["box"], b["box"]) or _contains(b["box"], a["box"])
                overlapping = shared.sum() >= 30 and not nested
                assert len(depth) == (1 if overlapping else 0)
                if depth == {"in front of"}:
                    n_depth += 1
                    assert (o, s, "behind") in truth
                    # The pixels show it: deep inside both shapes, the image has the front shape's colour.
                    ys, xs = np.nonzero(_erode(shared, 2))
                    assert len(ys), "overlap too thin to see"
                    colour = pixels[ys[len(ys) // 2], xs[len(xs) // 2]]
                    front, back = np.array(COLORS[a["color"]]), np.array(COLORS[b["color"]])
                    assert np.abs(colour - front).sum() + 40 < np.abs(colour - back).sum()
    assert n_depth >= 5
    assert set(predicates) == {
        "above",
        "below",
        "left of",
        "right of",
        "next to",
        "on",
        "inside",
        "in front of",
        "behind",
    }


def test_depth_order_is_independent_of_geometry():
    rng = random.Random(3)
    first_in_front, front_sizes, back_sizes = 0, [], []
    n = 300
    for _ in range(n):
        pair = _overlap(rng, _Palette(rng), 1.0)
        front, back = sorted(pair, key=lambda s: -s.rank)
        first_in_front += pair[0].rank > pair[1].rank
        front_sizes.append(front.box[2] - front.box[0])
        back_sizes.append(back.box[2] - back.box[0])
    assert 0.42 < first_in_front / n < 0.58
    assert abs(np.mean(front_sizes) - np.mean(back_sizes)) < 4


def test_captions_name_their_statements_and_hallucinations_are_false(world):
    objects = _objects(world)
    truth = {
        e["image_id"]: {(r["subject_id"], r["object_id"], r["predicate"]) for r in e["relations"]}
        for e in _load(world, "relations.json")
    }
    captions = {c["id"]: c for c in _load(world, "captions.json")["annotations"]}
    statements = _load(world, "statements.json")
    hallucinations = _load(world, "hallucinations.json")
    for st in statements:
        text = captions[st["caption_id"]]["caption"].lower()
        for ann_id in (st["subject_id"], st["object_id"]):
            obj = objects[st["image_id"]][ann_id]
            assert f"{obj['color']} {obj['category']}" in text
        assert st["holds"] == ((st["subject_id"], st["object_id"], st["predicate"]) in truth[st["image_id"]])
    for h in hallucinations:
        assert (h["subject_id"], h["object_id"], h["predicate"]) not in truth[h["image_id"]]
    per_caption = Counter(h["caption_id"] for h in hallucinations)
    assert set(per_caption.values()) == {1}
    assert abs(len(per_caption) / len(captions) - RATE) <= 0.01
    assert all(any(st["caption_id"] == cid for st in statements) for cid in captions)


@pytest.mark.parametrize("rate", [0.0, 0.5, 1.0])
def test_hallucination_rate_is_followed(tmp_path, rate):
    generate_world(tmp_path, n_images=8, seed=2, hallucination_rate=rate)
    n_captions = len(_load(tmp_path, "captions.json")["annotations"])
    n_false = len({h["caption_id"] for h in _load(tmp_path, "hallucinations.json")})
    assert abs(n_false - rate * n_captions) <= 1


def test_synth_command(tmp_path):
    from sgpipe.cli import app

    runner = CliRunner()
    args = ["synth", str(tmp_path / "w"), "--images", "3", "--seed", "4", "--first-id", "7"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 images" in result.output
    assert sorted(p.name for p in (tmp_path / "w" / "images").iterdir()) == [
        "000000000007.jpg",
        "000000000008.jpg",
        "000000000009.jpg",
    ]
    bad = runner.invoke(app, ["synth", str(tmp_path / "x"), "--hallucination-rate", "1.5"])
    assert bad.exit_code == 2
    assert "hallucination_rate" in bad.output


@pytest.mark.slow
def test_thousand_images_well_under_a_minute(tmp_path):
    import time

    start = time.perf_counter()
    generate_world(tmp_path, n_images=1000, seed=0)
    assert time.perf_counter() - start < 40
