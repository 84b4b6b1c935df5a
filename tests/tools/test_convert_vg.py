import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sgpipe.errors import SgpipeError
from sgpipe.shards import iter_shard_samples
from sgpipe.tools.convert_vg import convert_vg
from tests.helpers.images import write_image
from tests.helpers.schemas import validate

SAMPLES = Path(__file__).resolve().parents[3] / "shared/data/samples"


def _obj(object_id, name, x, y, w, h, key="names"):
    return {
        "object_id": object_id,
        "x": x,
        "y": y,
        "w": w,
        "h": h,
        key: [name] if key == "names" else name,
        "synsets": [],
    }


def _scene_graphs():
    return [
        {
            "image_id": 1,
            "objects": [
                _obj(11, "Man", 5, 5, 20, 40),
                _obj(12, "horse ", 30, 10, 60, 50),
                _obj(13, "hat", 90, 45, 30, 30),
                _obj(14, "ghost", 200, 200, 5, 5),
            ],
            "relationships": [
                {"relationship_id": 1, "predicate": "RIDING ", "subject_id": 11, "object_id": 12},
                {"relationship_id": 2, "predicate": "riding", "subject_id": 11, "object_id": 12},  # duplicate
                {"relationship_id": 3, "predicate": "wears", "subject_id": 12, "object_id": 13},
                {"relationship_id": 4, "predicate": "near", "subject_id": 14, "object_id": 11},
            ],
        },  # dropped end
        {
            "image_id": 2,
            "objects": [_obj(21, "man", 0, 0, 10, 10), _obj(22, "horse", 10, 10, 20, 20)],
            "relationships": [
                {"relationship_id": 5, "predicate": "riding", "subject_id": 21, "object_id": 22}
            ],
        },
        {"image_id": 3, "objects": [], "relationships": []},  # its image is missing
        {"image_id": 2, "objects": [], "relationships": []},  # duplicate id
    ]


@pytest.fixture
def vg(tmp_path):
    write_image(tmp_path / "images" / "1.jpg", 100, 80)
    write_image(tmp_path / "images" / "VG_100K_2" / "2.jpg", 40, 30)
    (tmp_path / "scene_graphs.json").write_text(json.dumps(_scene_graphs()))
    return tmp_path


def test_scene_graphs_become_standard_shards(vg):
    summary = convert_vg(vg / "images", vg / "scene_graphs.json", vg / "out", samples_per_shard=2)
    assert "wrote 2 shards" in summary and "4 images (2 ok" in summary
    samples = {s.key: s for s in iter_shard_samples(str(vg / "out"))}
    assert list(samples) == ["vg-000000000001", "vg-000000000002"]
    record = samples["vg-000000000001"].record
    validate(record, "scene_graph")
    assert [(o["id"], o["category"], o["bbox"]) for o in record["objects"]] == [
        (11, "man", [5, 5, 20, 40]),
        (12, "horse", [30, 10, 60, 50]),
        (13, "hat", [90, 45, 10, 30]),
    ]  # clipped
    assert [
        (r["subject_id"], r["predicate"], r["object_id"], r["confidence"], r["kept"])
        for r in record["relations"]
    ] == [(11, "riding", 12, 1.0, True), (12, "wears", 13, 1.0, True)]
    assert [
        (t["subject"], t["predicate"], t["object"], t["predicate_text"], t["support"])
        for t in record["triplets"]
    ] == [("man", "riding", "horse", "RIDING", 1), ("horse", "wears", "hat", "wears", 1)]
    assert record["width"] == 100 and record["height"] == 80  # from the image header
    assert samples["vg-000000000001"].image_bytes == (vg / "images" / "1.jpg").read_bytes()
    assert samples["vg-000000000002"].record["file_name"] == "VG_100K_2/2.jpg"
    rows = pq.read_table(vg / "out" / "00001.parquet").to_pylist()
    assert [(r["image_id"], r["status"]) for r in rows] == [(3, "failed_missing"), (2, "failed_duplicate_id")]
    stats = json.loads((vg / "out" / "stats.json").read_text())
    validate(stats, "stats")
    assert stats["counters"] == {
        "vg_boxes_clipped": 1,
        "vg_boxes_dropped": 1,
        "vg_relations_dropped": 1,
        "vg_relations_duplicate": 1,
    }
    categories = json.loads((vg / "out" / "categories.json").read_text())
    assert categories == [
        {"id": 1, "name": "man", "count": 2},
        {"id": 2, "name": "horse", "count": 2},
        {"id": 3, "name": "hat", "count": 1},
    ]
    assert json.loads((vg / "out" / "shardindex.json").read_text())["name"] == "vg"


def test_relationships_format_and_image_data_sizes(vg):
    relationships = [
        {
            "image_id": 1,
            "relationships": [
                {
                    "relationship_id": 1,
                    "predicate": "on",
                    "subject": _obj(13, "hat", 90, 45, 30, 30, key="name"),
                    "object": _obj(12, "horse", 30, 10, 60, 50),
                },
                {
                    "relationship_id": 2,
                    "predicate": "wears",
                    "subject": _obj(12, "horse", 30, 10, 60, 50),
                    "object": _obj(13, "hat", 90, 45, 30, 30, key="name"),
                },
            ],
        }
    ]
    (vg / "relationships.json").write_text(json.dumps(relationships))
    (vg / "image_data.json").write_text(
        json.dumps([{"image_id": 1, "width": 200, "height": 160, "url": "https://example.org/VG_100K/1.jpg"}])
    )
    convert_vg(vg / "images", vg / "relationships.json", vg / "out", image_data=vg / "image_data.json")
    record = next(iter_shard_samples(str(vg / "out"))).record
    assert (record["width"], record["height"]) == (200, 160)  # image_data wins over the header
    assert [o["id"] for o in record["objects"]] == [13, 12]  # each object once
    assert record["objects"][0]["bbox"] == [90, 45, 30, 30]  # not clipped in the larger frame
    assert [(r["subject_id"], r["predicate"], r["object_id"]) for r in record["relations"]] == [
        (13, "on", 12),
        (12, "wears", 13),
    ]


def test_convert_vg_errors(vg):
    with pytest.raises(SgpipeError, match="does not exist"):
        convert_vg(vg / "images", vg / "nope.json", vg / "out")
    (vg / "bad.json").write_text("{not json")
    with pytest.raises(SgpipeError, match="not a Visual Genome JSON"):
        convert_vg(vg / "images", vg / "bad.json", vg / "out2")
    convert_vg(vg / "images", vg / "scene_graphs.json", vg / "out3")
    with pytest.raises(SgpipeError, match="already holds shards"):
        convert_vg(vg / "images", vg / "scene_graphs.json", vg / "out3")


@pytest.mark.skipif(
    not (SAMPLES / "vg_scene_graphs_sample.json").is_file(), reason="shared VG samples absent"
)
def test_real_vg_sample_files(tmp_path):
    graphs = json.loads((SAMPLES / "vg_scene_graphs_sample.json").read_text())[:5]
    sizes = []
    for entry in graphs:  # VG images are not shipped: stand-ins large enough for every box
        width = max(o["x"] + o["w"] for o in entry["objects"]) + 1
        height = max(o["y"] + o["h"] for o in entry["objects"]) + 1
        sizes.append({"image_id": entry["image_id"], "width": width, "height": height})
        write_image(tmp_path / "images" / "VG_100K" / f"{entry['image_id']}.jpg", 16, 16)
    (tmp_path / "sg.json").write_text(json.dumps(graphs))
    (tmp_path / "image_data.json").write_text(json.dumps(sizes))
    convert_vg(
        tmp_path / "images", tmp_path / "sg.json", tmp_path / "out", image_data=tmp_path / "image_data.json"
    )
    records = [s.record for s in iter_shard_samples(str(tmp_path / "out"))]
    assert len(records) == 5
    for record, entry in zip(records, graphs):
        validate(record, "scene_graph")
        distinct = {
            (r["subject_id"], r["object_id"], r["predicate"].strip().lower()) for r in entry["relationships"]
        }
        assert len(record["relations"]) == len(distinct)
    for name in ("vg_relationships_sample.json",):
        convert_vg(
            tmp_path / "images", SAMPLES / name, tmp_path / "out_rel", image_data=tmp_path / "image_data.json"
        )
        assert json.loads((tmp_path / "out_rel" / "stats.json").read_text())["totals"]["n_relations"] > 0
