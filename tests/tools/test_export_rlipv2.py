"""`export --format rlipv2` read back the way RLIPv2's pre-training datasets read it (the reader is checked
against RLIPv2's own loaders in test_rlipv2_loaders.py)."""

import json
import shutil
from pathlib import Path

import pytest

from sgpipe.shards import iter_shard_samples
from sgpipe.output.finalize import finalize_outputs
from sgpipe.output.writer import write_shard
from sgpipe.tools.export import export
from sgpipe.tools.rlipv2_format import relation_text
from tests.helpers.rlipv2_reader import CocoRLIPReader, MixedRelReader, vocabulary_from_annotations
from tests.helpers.tiny_shards import PROVENANCE, make_output, output_sample



def _o365_output(out: Path, n_images: int = 4) -> None:
    """Shards of an `o365` source whose file names are Objects365's own (`images/v2/patchN/...`)."""
    samples = [output_sample(i + 1, "o365", relations=(i % 3 != 2)) for i in range(n_images)]
    for sample in samples:
        sample.file_name = f"images/v2/patch{sample.image_id % 2}/objects365_v2_{sample.image_id:08d}.jpg"
    write_shard(out, 0, samples[:2], PROVENANCE)
    write_shard(out, 1, samples[2:], PROVENANCE)
    finalize_outputs(out, "o365")


def _place_images(out: Path, folder: Path, relative) -> None:
    """Put each shard image where a user's dataset folder holds it (`relative(record)`)."""
    for sample in iter_shard_samples(str(out)):
        path = folder / relative(sample.record)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sample.image_bytes)


def _relations_by_image(out: Path, kept_only: bool = True) -> dict[int, set]:
    result = {}
    for sample in iter_shard_samples(str(out)):
        record = sample.record
        names = {o["id"]: o["category"] for o in record["objects"]}
        result[record["image_id"]] = {
            (names[r["subject_id"]], relation_text(record, r), names[r["object_id"]])
            for r in record["relations"]
            if r["kept"] or (r["kept"] is None and not kept_only)
        }
    return result


def _triplets(item: dict) -> set:
    """(subject name, predicate, object name) from a reader item: labels -> classes, pairs -> verbs."""
    objects = {i: item["obj_classes"][label] for i, label in item["labels"]}
    return {
        (objects[s], item["verb_classes"][v], objects[o])
        for (s, o), row in zip(item["pairs"], item["verb_labels"])
        for v, on in enumerate(row)
        if on
    }


def test_coco_export_loads_in_mixed_and_coco_datasets(tmp_path):
    out = tmp_path / "out"
    make_output(out, n_images=5, per_shard=2, dataset="coco")
    summary = export(out, "rlipv2", tmp_path / "coco.json")
    assert "coco2017 5; coco as data_split train2017" in summary
    _place_images(out, tmp_path / "COCO" / "train2017", lambda r: f"{r['image_id']:012d}.jpg")
    items = json.loads((tmp_path / "coco.json").read_text())
    assert items[0]["dataset"] == "coco2017" and items[0]["data_split"] == "train2017"
    assert items[0]["objects"][0]["names"] == "person"
    expected = _relations_by_image(out)

    mixed = MixedRelReader(
        tmp_path / "coco.json", ["coco2017"], relation_threshold=0.2, coco2017_folder=tmp_path / "COCO"
    )
    assert len(mixed) == 4  # image 3 has no relations: RLIPv2 drops it from its ids
    read = {item["image_id"]: item for item in (mixed[i] for i in range(len(mixed)))}
    assert {i: _triplets(item) for i, item in read.items()} == {i: t for i, t in expected.items() if t}
    assert read[1]["size"] == (64, 48) and read[1]["path"] == tmp_path / "COCO/train2017/000000000001.jpg"
    assert read[1]["boxes"][0] == [2, 2, 22, 32]

    coco = CocoRLIPReader(
        tmp_path / "coco.json",
        tmp_path / "coco_vocab_freq.json",
        tmp_path / "COCO" / "train2017",
        use_all_text_labels=True,
    )
    assert len(coco) == 5
    for i in range(len(coco)):
        item = coco[i]
        assert _triplets(item) == expected[item["image_id"]]
        assert item["obj_classes"] == coco.object_names  # labels index the vocabulary file's names


def test_o365_export_writes_the_image_path_file_rlipv2_reads(tmp_path):
    out = tmp_path / "out"
    _o365_output(out)
    summary = export(out, "rlipv2", tmp_path / "o365.json")
    paths = json.loads((tmp_path / "o365_image_id_to_filepath.json").read_text())
    assert paths == {str(i): f"train/patch{i % 2}/objects365_v2_{i:08d}.jpg" for i in range(1, 5)}
    assert "image_id_to_filepath.json" in summary
    root = tmp_path / "Objects365"  # RLIPv2's layout: train/patchN/..., image_id_to_filepath.json
    _place_images(out, root, lambda r: paths[str(r["image_id"])])
    shutil.copy(tmp_path / "o365_image_id_to_filepath.json", root / "image_id_to_filepath.json")

    reader = MixedRelReader(tmp_path / "o365.json", ["o365"], relation_threshold=0.2, o365_folder=root)
    read = {item["image_id"]: item for item in (reader[i] for i in range(len(reader)))}
    expected = _relations_by_image(out)
    assert {i: _triplets(item) for i, item in read.items()} == {i: t for i, t in expected.items() if t}
    assert all(item["path"].is_file() for item in read.values())
    assert json.loads((tmp_path / "o365.json").read_text())[0]["data_split"] == "train"


def test_split_comes_from_the_run_or_the_option(tmp_path):
    out = tmp_path / "out"
    make_output(out, n_images=2, per_shard=2, dataset="coco", failed=0)
    (out / "run.json").write_text(json.dumps({"config": {"source": {"images": "/data/coco/val2017/"}}}))
    export(out, "rlipv2", tmp_path / "val.json")
    assert {i["data_split"] for i in json.loads((tmp_path / "val.json").read_text())} == {"val2017"}
    _place_images(out, tmp_path / "COCO" / "val2017", lambda r: f"{r['image_id']:012d}.jpg")
    reader = MixedRelReader(tmp_path / "val.json", ["coco2017"], coco2017_folder=tmp_path / "COCO")
    assert reader[0]["path"].parent.name == "val2017"
    export(out, "rlipv2", tmp_path / "forced.json", data_split="train2017")
    assert {i["data_split"] for i in json.loads((tmp_path / "forced.json").read_text())} == {"train2017"}
    assert not (tmp_path / "val_image_id_to_filepath.json").exists()  # no Objects365 item, no path file


def test_unverified_relations_carry_no_confidence_and_survive_thresholding(tmp_path):
    out = tmp_path / "out"
    make_output(out, n_images=2, per_shard=2, dataset="coco", verified=False, failed=0)
    export(out, "rlipv2", tmp_path / "raw.json")
    items = json.loads((tmp_path / "raw.json").read_text())
    assert all("confidence" not in r for i in items for r in i["relationships"])
    _place_images(out, tmp_path / "COCO" / "train2017", lambda r: f"{r['image_id']:012d}.jpg")
    reader = MixedRelReader(
        tmp_path / "raw.json", ["coco2017"], relation_threshold=0.2, coco2017_folder=tmp_path / "COCO"
    )
    assert [len(reader[i]["pairs"]) for i in range(len(reader))] == [2, 2]  # RLIPv2 keeps them all


def test_vocabulary_file_equals_what_rlipv2_builds_online(tmp_path):
    out = tmp_path / "out"
    make_output(out, n_images=5, per_shard=2, dataset="coco")
    export(out, "rlipv2", tmp_path / "coco.json")
    written = json.loads((tmp_path / "coco_vocab_freq.json").read_text())
    online = vocabulary_from_annotations(json.loads((tmp_path / "coco.json").read_text()))
    assert written["relationship_freq"] == online["relationship_freq"]
    assert written["object_freq"] == online["object_freq"]
    for key in ("relationship_names", "object_names"):  # same ranking; ties may differ in order
        freq = written[key.replace("names", "freq")]
        assert [freq[n] for n in written[key]] == [freq[n] for n in online[key]]
        assert sorted(written[key]) == sorted(online[key])


def test_other_sources_are_visual_genome_items(tmp_path):
    out = tmp_path / "out"
    make_output(out, n_images=2, per_shard=2, dataset="synth", failed=0)
    summary = export(out, "rlipv2", tmp_path / "vg.json")
    assert "VG/images/{image_id}.jpg" in summary
    items = json.loads((tmp_path / "vg.json").read_text())
    assert all("dataset" not in i and "data_split" not in i for i in items)
    _place_images(out, tmp_path / "VG" / "images", lambda r: f"{r['image_id']}.jpg")
    reader = MixedRelReader(tmp_path / "vg.json", ["vg"], vg_folder=tmp_path / "VG" / "images")
    assert reader[0]["path"] == tmp_path / "VG/images/1.jpg"


def test_detected_boxes_export_as_objects_named_by_their_phrase(tmp_path):
    """A web source's record: detector boxes only, a 63-bit image id; RLIPv2 reads it as a VG item."""
    from sgpipe.records import Box, Relation, Triplet

    sample = output_sample(1, "cc3m")
    sample.image_id = 2**62 + 5  # a hashed key's id
    sample.key = f"cc3m-{sample.image_id:012d}"
    sample.objects = [Box(0, "man", -1, [2, 2, 20, 30], source="detector", score=0.91),
                      Box(1, "skateboard", -1, [10, 25, 30, 20], source="detector", score=0.48)]
    sample.triplets = [Triplet("man", "ride", "skateboard", "a man", "riding", "a skateboard", 0, 1, [0])]
    sample.relations = [Relation(0, 0, 1, "ride", 0, 0.9, 0.6, True)]
    write_shard(tmp_path / "out", 0, [sample], PROVENANCE)
    export(tmp_path / "out", "rlipv2", tmp_path / "web.json")
    (item,) = json.loads((tmp_path / "web.json").read_text())
    assert item["image_id"] == 2**62 + 5 and "dataset" not in item
    assert item["objects"] == [
        {"object_id": 0, "x": 2.0, "y": 2.0, "w": 20.0, "h": 30.0, "names": "man"},
        {"object_id": 1, "x": 10.0, "y": 25.0, "w": 30.0, "h": 20.0, "names": "skateboard"},
    ]
    vocab = json.loads((tmp_path / "web_vocab_freq.json").read_text())
    assert vocab["object_names"] == ["man", "skateboard"] and vocab["relationship_names"] == ["riding"]
    _place_images(tmp_path / "out", tmp_path / "VG" / "images", lambda r: f"{r['image_id']}.jpg")
    read = MixedRelReader(tmp_path / "web.json", ["vg"], vg_folder=tmp_path / "VG" / "images")[0]
    assert _triplets(read) == {("man", "riding", "skateboard")}  # the surface text, as RLIPv2's labels


def test_the_reader_fails_where_rlipv2_fails(tmp_path):
    """The former export (names as a list, confidence null) breaks RLIPv2's loader; so does the reader."""
    out = tmp_path / "out"
    make_output(out, n_images=1, per_shard=1, dataset="coco", failed=0)
    export(out, "rlipv2", tmp_path / "coco.json")
    _place_images(out, tmp_path / "COCO" / "train2017", lambda r: f"{r['image_id']:012d}.jpg")
    items = json.loads((tmp_path / "coco.json").read_text())
    for obj in items[0]["objects"]:
        obj["names"] = [obj["names"]]
    (tmp_path / "list.json").write_text(json.dumps(items))
    with pytest.raises(TypeError, match="unhashable"):
        MixedRelReader(tmp_path / "list.json", ["coco2017"], coco2017_folder=tmp_path / "COCO")[0]
    items[0]["relationships"][0]["confidence"] = None
    (tmp_path / "null.json").write_text(json.dumps(items))
    with pytest.raises(TypeError):
        MixedRelReader(tmp_path / "null.json", ["coco2017"], relation_threshold=0.2)
    del items[0]["dataset"]
    (tmp_path / "nodataset.json").write_text(json.dumps(items))
    reader = MixedRelReader(tmp_path / "nodataset.json", ["vg"], vg_folder=tmp_path / "VG")
    with pytest.raises(FileNotFoundError):
        reader[0]  # without `dataset` RLIPv2 looks in the Visual Genome folder


def test_export_command_takes_the_split(tmp_path):
    from typer.testing import CliRunner

    from sgpipe.cli import app

    make_output(tmp_path / "out", n_images=1, per_shard=1, dataset="coco", failed=0)
    args = ["export", str(tmp_path / "out"), "--output", str(tmp_path / "x.json"), "--data-split", "val2017"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "coco as data_split val2017" in result.output
    assert json.loads((tmp_path / "x.json").read_text())[0]["data_split"] == "val2017"


def test_the_relation_text_is_the_surface_one():
    """RLIPv2's labels hold SceneGraphParser's surface text: the relation's own, else its triplet's (records
    written before relations had one), else its predicate."""
    record = {"triplets": [{"id": 0, "predicate": "ride", "predicate_text": "riding"},
                           {"id": 1, "predicate": "on", "predicate_text": ""}]}
    assert relation_text(record, {"predicate": "ride", "predicate_text": "rides", "triplet_id": 0}) == "rides"
    assert relation_text(record, {"predicate": "ride", "triplet_id": 0}) == "riding"
    assert relation_text(record, {"predicate": "ride", "predicate_text": "", "triplet_id": 0}) == "riding"
    assert relation_text(record, {"predicate": "on", "triplet_id": 1}) == "on"
    assert relation_text(record, {"predicate": "near", "triplet_id": -1}) == "near"
