"""A folder of images: every image under it, recursively and sorted, with NAME.txt as its alt text."""

from sgpipe.config import SourceConfig, build_config
from sgpipe.source.folder import list_files
from sgpipe.source.items import image_id_of_key
from sgpipe.source.plan import build_plan
from sgpipe.source.readers import ShardReader
from tests.helpers.web_fixture import ALT_TEXTS, make_image_folder


def test_listing_is_recursive_sorted_and_skips_hidden_files(tmp_path):
    root = make_image_folder(tmp_path / "photos")
    assert list_files(root) == ["a.png", "a.txt", "b/2.jpg", "b/2.txt", "b/notes.md", "c.jpg", "d.txt"]


def test_entries_with_alt_texts_read_by_the_worker(tmp_path):
    root = make_image_folder(tmp_path / "photos")
    source = SourceConfig(kind="folder", name="mine", images=str(root))
    plan = build_plan(source, 3, tmp_path / "plan")
    assert plan.shard_sizes == [3, 1] and plan.counters == {"files_ignored": 1}
    reader = ShardReader(source, tmp_path / "plan")
    entries = [e for shard in range(plan.n_shards) for e, image in reader.items(shard)]
    assert [e.file_name for e in entries] == ["a.png", "b/2.jpg", "c.jpg", "d"]
    assert [e.source_key for e in entries] == ["a", "b/2", "c", "d"]
    assert [e.image_id for e in entries] == [image_id_of_key("a"), image_id_of_key("b/2"),
                                             image_id_of_key("c"), image_id_of_key("d")]
    assert [[c.text for c in e.captions] for e in entries] == [[ALT_TEXTS[1]], [ALT_TEXTS[0]], [], []]
    assert [(e.failure, e.failure_message) for e in entries][3] == (
        "failed_missing", "no image beside the alt text 'd.txt'"
    )
    assert not any(e.failure for e in entries[:3])


def test_two_images_of_one_name_and_repeated_digits_are_duplicates(tmp_path):
    root = tmp_path / "photos"
    make_image_folder(root)
    (root / "c.png").write_bytes((root / "a.png").read_bytes())  # c.jpg and c.png: one item twice
    (root / "7.jpg").write_bytes((root / "c.jpg").read_bytes())
    (root / "007.jpg").write_bytes((root / "c.jpg").read_bytes())  # image id 7 twice
    source = SourceConfig(kind="folder", name="mine", images=str(root), limit=6)
    plan = build_plan(source, 10, tmp_path / "plan")
    entries = [e for e, _ in ShardReader(source, tmp_path / "plan").items(0)]
    assert [(e.file_name, e.duplicate) for e in entries] == [
        ("007.jpg", False), ("7.jpg", True), ("a.png", False), ("b/2.jpg", False), ("c.jpg", False),
        ("c.png", True),
    ]
    assert plan.n_images == 6  # source.limit: the first six in path order (d.txt's entry is left out)


def test_a_folder_runs_through_the_stages_with_owlv2_and_its_copies_are_found(tmp_path):
    """Decode -> parse -> detect (the tiny OWLv2) -> tag, in process (Ray runs: test_web_pipeline.py)."""
    import json
    import tarfile

    import pyarrow.parquet as pq

    from sgpipe.leakage.scan import find_leakage
    from sgpipe.run.processor import ShardJob, ShardProcessor
    from sgpipe.run.sources import PlannedSource
    from sgpipe.source.plan import plan_dir_of
    from tests.helpers.schemas import validate
    from tests.helpers.tiny_detectors import build_tiny_owlv2

    root = make_image_folder(tmp_path / "photos")
    out = tmp_path / "out"
    config = build_config({
        "source": {"kind": "folder", "name": "mine", "images": str(root)},
        "output": {"dir": str(out), "samples_per_shard": 10},
        "tag": {"embedding_model": "none"},
        "detect": {"enabled": True, "model": str(build_tiny_owlv2(tmp_path / "owl")), "box_threshold": 0.1},
    })
    plan = build_plan(config.source, 10, plan_dir_of(out))
    ShardProcessor(config, ShardJob(plan.dataset, (), PlannedSource(config))).process_shard(0)
    rows = pq.read_table(out / "00000.parquet").to_pylist()
    assert [(r["file_name"], r["status"], r["n_captions"]) for r in rows] == [
        ("a.png", "ok", 1), ("b/2.jpg", "ok", 1), ("c.jpg", "ok", 0), ("d", "failed_missing", 0)
    ]
    with tarfile.open(out / "00000.tar") as tar:
        names = tar.getnames()
        records = [json.loads(tar.extractfile(n).read()) for n in names if n.endswith(".json")]
    assert [n.rsplit(".", 1)[1] for n in names] == ["png", "json", "jpg", "json", "jpg", "json"]
    for record in records:
        validate(record, "scene_graph")
    assert [(r["source_key"], r["width"], r["height"]) for r in records] == [("a", 36, 30), ("b/2", 40, 32),
                                                                             ("c", 30, 30)]
    assert records[1]["triplets"] and "metadata" not in records[0]
    for record in records:  # a's and b/2's alt texts name things; c has no caption, so no phrase
        phrases = {e for t in record["triplets"] for e in (t["subject"], t["object"])}
        assert {o["category"] for o in record["objects"]} <= phrases
        assert all(o["source"] == "detector" and o["score"] >= 0.1 for o in record["objects"])
    assert records[1]["objects"] and not records[2]["objects"]

    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    (evaluation / "copy.jpg").write_bytes((root / "b" / "2.jpg").read_bytes())
    summary = find_leakage(config, [str(evaluation)], tmp_path / "leak.json", threads=2)
    assert json.loads((tmp_path / "leak.json").read_text()) == [
        {"image_id": image_id_of_key("b/2"), "file_name": "b/2.jpg", "how": "bytes",
         "against": str(evaluation / "copy.jpg"), "distance": 0}
    ]
    assert "3 images hashed, 1 missing" in summary
