import json

import pytest

from sgpipe.config import SourceConfig
from sgpipe.errors import SourceError
from sgpipe.source.plan import build_plan, read_shard_entries
from tests.helpers.coco_fixture import make_coco


def _source(paths, **kw):
    return SourceConfig(
        name="t",
        instances=str(paths["instances"]),
        images=str(paths["images"]),
        captions=str(paths.get("captions", "")),
        **kw,
    )


def _all_entries(plan_dir, plan):
    return [e for i in range(plan.n_shards) for e in read_shard_entries(plan_dir, i)]


def test_plan_shards_in_image_id_order(tmp_path):
    paths = make_coco(tmp_path / "d", n_images=5)
    plan = build_plan(_source(paths), samples_per_shard=2, plan_dir=tmp_path / "plan")
    assert plan.shard_sizes == [2, 2, 1]
    assert plan.categories == ["person", "bicycle", "dog"]  # category id order
    entries = _all_entries(tmp_path / "plan", plan)
    assert [e.image_id for e in entries] == [10, 20, 30, 40, 50]
    assert [len(e.captions) for e in entries] == [3] * 5
    assert all(len(e.objects) == 3 for e in entries)


def test_stream_index_gives_the_same_plan_as_pycocotools(tmp_path):
    paths = make_coco(tmp_path / "d", n_images=7)
    data = json.loads(paths["instances"].read_text())
    # keys in an unusual order, a duplicate id, a bad box, a box without id
    data["images"].append(dict(data["images"][2]))
    data["annotations"].append({"id": 99999, "image_id": 10, "category_id": 1, "bbox": [1, 1, 0, 5]})
    data["annotations"].append({"image_id": 10, "category_id": 1, "bbox": [1, 1, 3, 5]})
    reordered = {
        "annotations": data["annotations"],
        "categories": data["categories"],
        "images": data["images"],
    }
    paths["instances"].write_text(json.dumps(reordered))
    small = build_plan(_source(paths, index="pycocotools"), 3, tmp_path / "p1")
    streamed = build_plan(_source(paths, index="stream"), 3, tmp_path / "p2")
    assert small.shard_sizes == streamed.shard_sizes == [3, 3, 2]
    assert small.counters == streamed.counters == {"annotations_malformed": 1, "images_unusable": 0}
    for i in range(small.n_shards):
        assert (tmp_path / "p1" / f"{i:05d}.jsonl").read_bytes() == (
            tmp_path / "p2" / f"{i:05d}.jsonl"
        ).read_bytes()
    entries = _all_entries(tmp_path / "p1", small)
    assert [e.duplicate for e in entries].count(True) == 1
    assert entries[0].dropped_boxes == {"box_zero_area": 1}


def test_limit_and_plan_reuse(tmp_path):
    paths = make_coco(tmp_path / "d", n_images=5)
    plan = build_plan(_source(paths, limit=3), 2, tmp_path / "plan")
    assert plan.n_images == 3
    marker = tmp_path / "plan" / "00000.jsonl"
    mtime = marker.stat().st_mtime_ns
    again = build_plan(_source(paths, limit=3), 2, tmp_path / "plan")
    assert again == plan and marker.stat().st_mtime_ns == mtime  # reused, not rebuilt


@pytest.mark.parametrize("index", ["pycocotools", "stream"])
def test_malformed_json_is_one_clear_error(tmp_path, index):
    paths = make_coco(tmp_path / "d", n_images=2)
    paths["instances"].write_text('{"images": [{"id": 1,')
    with pytest.raises(SourceError, match="not valid JSON"):
        build_plan(_source(paths, index=index), 2, tmp_path / "plan")


@pytest.mark.parametrize("index", ["pycocotools", "stream"])
def test_boxes_keep_the_files_order_and_every_annotations_category(tmp_path, index):
    """RLIPv2 pairs boxes in the annotation file's order and names an image's categories from all its
    annotations, dropped boxes included: the plan keeps both, whichever way the file is indexed."""
    paths = make_coco(tmp_path / "d", n_images=2)
    data = json.loads(paths["instances"].read_text())
    ten = [a for a in data["annotations"] if a["image_id"] == 10]
    twenty = [a for a in data["annotations"] if a["image_id"] == 20]
    zero_width_bicycle = {"id": 5, "image_id": 10, "category_id": 2, "bbox": [1, 1, 0, 5], "area": 0, "iscrowd": 0}
    data["annotations"] = [zero_width_bicycle, *ten, *reversed(twenty)]  # ids 5, 1000-1002; 2002, 2001, 2000
    paths["instances"].write_text(json.dumps(data))
    plan = build_plan(_source(paths, index=index), 2, tmp_path / "plan")
    first, second = _all_entries(tmp_path / "plan", plan)
    assert [b.id for b in first.objects] == [1000, 1001, 1002] and first.dropped_boxes == {"box_zero_area": 1}
    assert first.annotation_categories == [2, 1, 18]  # the dropped bicycle comes first
    assert [b.id for b in second.objects] == [2002, 2001, 2000]  # the file's order, not the ids'
    assert second.annotation_categories is None  # the boxes give that order already
    line = (tmp_path / "plan" / "00000.jsonl").read_text().splitlines()
    assert '"annotation_categories":[2,1,18]' in line[0] and "annotation_categories" not in line[1]
