"""`convert rlipv2`: RLIPv2's pseudo-label files -> shards that train, stats and report read."""

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from sgpipe.cli import app
from sgpipe.errors import SgpipeError
from sgpipe.shards import iter_shard_samples
from sgpipe.output.finalize import finalize_outputs
from sgpipe.output.writer import write_shard
from sgpipe.tools.convert_rlipv2 import convert_rlipv2
from sgpipe.tools.export import export
from sgpipe.tools.rlipv2_format import relation_text
from sgpipe.tools.report import write_report
from sgpipe.tools.stats import show_stats
from sgpipe.train.data import ShardStream
from tests.helpers.schemas import validate
from tests.helpers.tiny_shards import PROVENANCE, make_output, output_sample


def _image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 120, 150)).save(path, format="JPEG")


def _obj(object_id, name, x, y, w, h):
    return {"object_id": object_id, "x": x, "y": y, "w": w, "h": h, "names": name}


def _rel(rel_id, predicate, subject_id, object_id, confidence=None):
    rel = {
        "relationship_id": rel_id,
        "predicate": predicate,
        "subject_id": subject_id,
        "object_id": object_id,
    }
    if confidence is not None:
        rel["confidence"] = confidence
    return rel


def _labels():
    """Items as RLIPv2's tagger writes them: global object ids, float boxes, names as strings."""
    return [
        {
            "image_id": 9,
            "dataset": "coco2017",
            "data_split": "train2017",
            "objects": [
                _obj(100, "person", 1.5, 2.25, 30.0, 40.0),
                _obj(101, "horse", 20.0, 10.0, 90.0, 50.0),  # reaches past the 100 px wide image: clipped
                _obj(102, "hat", 5.0, 0.0, 10.0, 8.0),
                _obj(103, " ", 5.0, 0.0, 10.0, 8.0),  # nameless: dropped
                _obj(100, "cat", 5.0, 0.0, 10.0, 8.0),  # repeated id: dropped
                _obj(104, "cat", 500.0, 0.0, 10.0, 8.0),  # outside the image: dropped
            ],
            "relationships": [
                _rel(0, "riding", 100, 101, 0.91),
                _rel(1, "riding", 100, 101, 0.42),  # repeated triple: the highest confidence stays
                _rel(2, "wearing", 100, 102, 0.15),  # stored, not kept
                _rel(3, "next to", 101, 102, 0.03),  # below the store threshold
                _rel(4, "on", 100, 999, 0.8),  # unknown object id: dropped
                _rel(5, "on", 100, [101], 0.8),  # not an id: dropped
                _rel(6, "on", 100, 101, "high"),  # not a confidence: dropped
                "on",  # not a relationship: dropped
            ],
        },
        {  # its image is missing
            "image_id": 25,
            "dataset": "coco2017",
            "data_split": "val2017",
            "objects": [_obj(103, "dog", 0.0, 0.0, 5.0, 5.0)],
            "relationships": [],
        },
        {
            "image_id": 420917,
            "dataset": "o365",
            "data_split": "train",
            "objects": [
                _obj(20000000, "person", 0.0, 0.0, 10.0, 20.0),
                _obj(20000001, "car", 10.0, 5.0, 20.0, 20.0),
            ],
            "relationships": [_rel(20000000, "driving", 20000000, 20000001, 0.33)],
        },
        {  # a Visual Genome item of a merged file: no dataset, no confidence (ground truth)
            "image_id": 7,
            "objects": [_obj(1, "cup", 0.0, 0.0, 10.0, 10.0), _obj(2, "table", 0.0, 10.0, 40.0, 20.0)],
            "relationships": [_rel(9, "on", 1, 2)],
        },
        {"image_id": 9, "dataset": "coco2017", "data_split": "train2017", "objects": [], "relationships": []},
    ]


@pytest.fixture
def rlipv2(tmp_path):
    images = tmp_path / "data"
    _image(images / "train2017" / "000000000009.jpg", 100, 80)
    _image(images / "train" / "patch8" / "objects365_v1_00420917.jpg", 60, 40)
    _image(images / "7.jpg", 50, 40)
    (images / "image_id_to_filepath.json").write_text(
        json.dumps({"420917": "train/patch8/objects365_v1_00420917.jpg"})
    )
    (tmp_path / "labels.json").write_text(json.dumps(_labels()))
    return tmp_path


def test_pseudo_labels_become_standard_shards(rlipv2):
    summary = convert_rlipv2(rlipv2 / "labels.json", rlipv2 / "data", rlipv2 / "out", samples_per_shard=2)
    assert "5 images (coco 3, o365 1, vg 1; 3 ok, failed_duplicate_id 1, failed_missing 1)" in summary
    assert "4 relations (3 kept at confidence >= 0.2)" in summary
    samples = {s.key: s for s in iter_shard_samples(str(rlipv2 / "out"))}
    assert list(samples) == ["coco-000000000009", "o365-000000420917", "vg-000000000007"]
    record = samples["coco-000000000009"].record
    validate(record, "scene_graph")
    assert (record["width"], record["height"], record["file_name"]) == (100, 80, "train2017/000000000009.jpg")
    assert [(o["id"], o["category"], o["bbox"]) for o in record["objects"]] == [
        (100, "person", [1.5, 2.25, 30.0, 40.0]),
        (101, "horse", [20.0, 10.0, 80.0, 50.0]),
        (102, "hat", [5.0, 0.0, 10.0, 8.0]),
    ]
    assert [
        (r["subject_id"], r["predicate"], r["object_id"], r["confidence"], r["kept"])
        for r in record["relations"]
    ] == [(100, "riding", 101, 0.91, True), (100, "wearing", 102, 0.15, False)]
    assert [(t["subject"], t["predicate"], t["object"], t["support"]) for t in record["triplets"]] == [
        ("person", "riding", "horse", 1),
        ("person", "wearing", "hat", 1),
    ]
    assert (
        samples["coco-000000000009"].image_bytes == (rlipv2 / "data/train2017/000000000009.jpg").read_bytes()
    )
    o365 = samples["o365-000000420917"].record
    assert o365["file_name"] == "train/patch8/objects365_v1_00420917.jpg"
    assert [(r["predicate"], r["confidence"], r["kept"]) for r in o365["relations"]] == [
        ("driving", 0.33, True)
    ]
    vg = samples["vg-000000000007"].record
    assert [(r["predicate"], r["confidence"], r["kept"]) for r in vg["relations"]] == [("on", 1.0, True)]

    rows = [r for n in range(3) for r in pq.read_table(rlipv2 / "out" / f"{n:05d}.parquet").to_pylist()]
    assert [(r["key"], r["status"]) for r in rows] == [
        ("coco-000000000009", "ok"),
        ("coco-000000000025", "failed_missing"),
        ("o365-000000420917", "ok"),
        ("vg-000000000007", "ok"),
        ("coco-000000000009", "failed_duplicate_id"),
    ]
    assert "val2017/000000000025.jpg" in rows[1]["error_message"]
    stats = json.loads((rlipv2 / "out" / "stats.json").read_text())
    validate(stats, "stats")
    assert stats["counters"] == {
        "rlipv2_boxes_clipped": 1,
        "rlipv2_boxes_dropped": 3,
        "rlipv2_relations_below_store_threshold": 1,
        "rlipv2_relations_dropped": 4,
        "rlipv2_relations_duplicate": 1,
        "rlipv2_relations_without_confidence": 1,
    }
    assert json.loads((rlipv2 / "out" / "shardindex.json").read_text())["name"] == "mixed"
    assert [c["name"] for c in json.loads((rlipv2 / "out" / "categories.json").read_text())] == [
        "person",
        "horse",
        "hat",
        "car",
        "cup",
        "table",
    ]


def test_bad_inputs_get_their_stated_outcome(rlipv2):
    (rlipv2 / "dict.json").write_text(json.dumps({"images": _labels()}))
    with pytest.raises(SgpipeError, match="not RLIPv2's format: a JSON list"):
        convert_rlipv2(rlipv2 / "dict.json", rlipv2 / "data", rlipv2 / "o1")
    assert not (rlipv2 / "o1").exists()  # nothing written
    (rlipv2 / "broken.json").write_text(json.dumps(_labels())[:-40])
    with pytest.raises(SgpipeError, match="not valid JSON"):
        convert_rlipv2(rlipv2 / "broken.json", rlipv2 / "data", rlipv2 / "o2")
    (rlipv2 / "noid.json").write_text(json.dumps([{"objects": []}]))
    with pytest.raises(SgpipeError, match="item 0 has no integer image_id"):
        convert_rlipv2(rlipv2 / "noid.json", rlipv2 / "data", rlipv2 / "o3")
    (rlipv2 / "hico.json").write_text(json.dumps([{"image_id": 1, "dataset": "hico"}]))
    with pytest.raises(SgpipeError, match="unsupported RLIPv2 dataset 'hico'"):
        convert_rlipv2(rlipv2 / "hico.json", rlipv2 / "data", rlipv2 / "o4")
    # Objects365 items without the path file: one error that says how to give it
    (rlipv2 / "data" / "image_id_to_filepath.json").unlink()
    with pytest.raises(SgpipeError, match="--image-paths"):
        convert_rlipv2(rlipv2 / "labels.json", rlipv2 / "data", rlipv2 / "o5")
    # an Objects365 id missing from the path file is a missing image, not a crash
    (rlipv2 / "paths.json").write_text(json.dumps({"1": "train/patch0/x.jpg"}))
    convert_rlipv2(rlipv2 / "labels.json", rlipv2 / "data", rlipv2 / "o6", image_paths=rlipv2 / "paths.json")
    rows = pq.read_table(rlipv2 / "o6" / "00000.parquet").to_pylist()
    assert [(r["key"], r["status"]) for r in rows][2] == ("o365-000000420917", "failed_missing")
    with pytest.raises(SgpipeError, match="already holds shards"):
        convert_rlipv2(
            rlipv2 / "labels.json", rlipv2 / "data", rlipv2 / "o6", image_paths=rlipv2 / "paths.json"
        )


def _stored_relations(out: Path) -> dict[str, list[tuple]]:
    return {
        s.key: [
            (r["subject_id"], relation_text(s.record, r), r["object_id"], r["confidence"], r["kept"])
            for r in s.record["relations"]
        ]
        for s in iter_shard_samples(str(out))
    }


def _objects(out: Path) -> dict[str, list[tuple]]:
    return {
        s.key: [(o["id"], o["category"], o["bbox"]) for o in s.record["objects"]]
        for s in iter_shard_samples(str(out))
    }


def _coco_folder(out: Path, root: Path) -> None:
    for sample in iter_shard_samples(str(out)):
        path = root / "train2017" / f"{sample.record['image_id']:012d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sample.image_bytes)


def test_round_trip_export_convert_gives_the_same_relations(tmp_path):
    make_output(tmp_path / "own", n_images=5, per_shard=2, dataset="coco")
    export(tmp_path / "own", "rlipv2", tmp_path / "labels.json", min_confidence=0.05)  # every stored relation
    _coco_folder(tmp_path / "own", tmp_path / "COCO")
    summary = convert_rlipv2(
        tmp_path / "labels.json", tmp_path / "COCO", tmp_path / "back", samples_per_shard=2
    )
    assert "5 ok" in summary
    assert _stored_relations(tmp_path / "back") == _stored_relations(tmp_path / "own")
    assert _objects(tmp_path / "back") == _objects(tmp_path / "own")
    own = json.loads((tmp_path / "own" / "stats.json").read_text())
    back = json.loads((tmp_path / "back" / "stats.json").read_text())
    assert back["categories"] == own["categories"]
    # RLIPv2's labels hold the surface text ("riding"): it is the predicate of the converted relations
    assert back["predicates"] == {"riding": own["predicates"]["ride"], "next to": own["predicates"]["next to"]}
    assert back["kept_predicates"] == {"riding": own["kept_predicates"]["ride"]}
    # stats and report read the converted folder like sgpipe's own output
    assert "relations: 8  kept: 4" in show_stats(tmp_path / "back")
    write_report(tmp_path / "back", tmp_path / "report.html", n_samples=2)
    assert "coco-000000000001" in (tmp_path / "report.html").read_text()


def test_round_trip_of_objects365_labels_through_the_image_path_file(tmp_path):
    samples = [output_sample(i + 1, "o365") for i in range(3)]
    for sample in samples:
        sample.file_name = f"images/v2/patch{sample.image_id}/objects365_v2_{sample.image_id:08d}.jpg"
    write_shard(tmp_path / "own", 0, samples, PROVENANCE)
    finalize_outputs(tmp_path / "own", "o365")
    export(tmp_path / "own", "rlipv2", tmp_path / "o365.json", min_confidence=0.05)
    paths = json.loads((tmp_path / "o365_image_id_to_filepath.json").read_text())
    for sample in samples:
        path = tmp_path / "Objects365" / paths[str(sample.image_id)]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sample.image_bytes)
    convert_rlipv2(
        tmp_path / "o365.json",
        tmp_path / "Objects365",
        tmp_path / "back",
        image_paths=tmp_path / "o365_image_id_to_filepath.json",
    )
    assert _stored_relations(tmp_path / "back") == _stored_relations(tmp_path / "own")
    assert _objects(tmp_path / "back") == _objects(tmp_path / "own")
    files = {s.key: s.record["file_name"] for s in iter_shard_samples(str(tmp_path / "back"))}
    assert files["o365-000000000002"] == "train/patch2/objects365_v2_00000002.jpg"


def test_the_trainer_streams_converted_shards(rlipv2):
    convert_rlipv2(rlipv2 / "labels.json", rlipv2 / "data", rlipv2 / "out", samples_per_shard=2)
    urls = sorted(str(p) for p in (rlipv2 / "out").glob("*.tar"))
    stream = ShardStream(
        urls,
        rank=0,
        world_size=1,
        seed=0,
        epoch=0,
        batch_size=8,
        image_size=32,
        frequencies={"riding": 1, "driving": 1, "on": 1},
        passes=1,
        example_args={"min_confidence": 0.2},
    )
    batches = list(stream)
    assert stream.corrupt.count == 0
    keys = sorted(k for b in batches for k in b["keys"])
    assert keys == ["coco-000000000009", "o365-000000420917", "vg-000000000007"]


def test_convert_rlipv2_command(rlipv2):
    shutil.move(rlipv2 / "data" / "image_id_to_filepath.json", rlipv2 / "paths.json")
    result = CliRunner().invoke(
        app,
        [
            "convert",
            "rlipv2",
            str(rlipv2 / "labels.json"),
            "--images",
            str(rlipv2 / "data"),
            "--out",
            str(rlipv2 / "out"),
            "--image-paths",
            str(rlipv2 / "paths.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 ok" in result.output and (rlipv2 / "out" / "00000.tar").is_file()
    result = CliRunner().invoke(
        app,
        [
            "convert",
            "rlipv2",
            str(rlipv2 / "nothing.json"),
            "--images",
            str(rlipv2),
            "--out",
            str(rlipv2 / "x"),
        ],
    )
    assert result.exit_code == 2 and "does not exist" in result.output
