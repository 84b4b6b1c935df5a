"""End to end on img2dataset-style tars: alt texts -> parse -> detect (tiny Grounding DINO) -> tag ->
verify (tiny verifier) -> shards; resume, --redo-failed, --limit, exclusions and leakage. One worker,
so in this process (the local executor); the detect stage on a Ray device actor is
tests/test_layouts.py's."""

import json
import shutil

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from typer.testing import CliRunner

from sgpipe.cli import app
from sgpipe.leakage.scan import find_leakage
from sgpipe.run.lifecycle import RunOptions, run_pipeline
from tests.helpers.images import jpeg_bytes
from tests.helpers.runs import QUIET
from tests.helpers.schemas import validate
from tests.helpers.tiny_detectors import build_tiny_grounding_dino
from tests.helpers.web_fixture import (
    ALT_TEXTS,
    CORRUPT_KEY,
    MISSING_KEY,
    item_members,
    make_img2dataset,
    web_run_config,
    write_tar,
)

REDO = RunOptions(progress=False, redo_failed=True)


@pytest.fixture(scope="module")
def tars(tmp_path_factory):
    return make_img2dataset(tmp_path_factory.mktemp("tars"), n_tars=3, per_tar=3)


@pytest.fixture(scope="module")
def dino(tmp_path_factory):
    return str(build_tiny_grounding_dino(tmp_path_factory.mktemp("dino") / "gd"))


def _config(tars, out, dino, verifier, **overrides):
    settings = {
        "run__workers": 1,
        "detect__enabled": True, "detect__model": dino, "detect__box_threshold": 0.3, "detect__max_boxes": 6,
        "verify__enabled": True, "verify__checkpoint": str(verifier), "verify__store_threshold": 0.0,
        **overrides,
    }
    return web_run_config(str(tars[0].parent / "{00000..00002}.tar"), out, **settings)


@pytest.fixture(scope="module")
def clean(tars, dino, tiny_verifier, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    run_pipeline(_config(tars, out, dino, tiny_verifier), QUIET)
    return out


def _bytes(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.suffix in (".tar", ".parquet")}


def test_one_shard_per_tar_with_every_item_and_its_status(clean):
    rows = pq.read_table(sorted(clean.glob("*.parquet"))).to_pylist()
    assert [r["key"] for r in rows] == [f"web-0000000{s}000{i}" for s in range(3) for i in range(3)]
    statuses = {r["key"]: r["status"] for r in rows}
    assert statuses.pop(f"web-{int(CORRUPT_KEY):012d}") == "failed_decode"
    assert statuses.pop(f"web-{int(MISSING_KEY):012d}") == "failed_missing"
    assert set(statuses.values()) == {"ok"}
    assert [p.name for p in sorted(clean.glob("*.tar"))] == ["00000.tar", "00001.tar", "00002.tar"]
    missing = next(r for r in rows if r["key"].endswith(MISSING_KEY))
    assert missing["file_name"] == f"00001.tar/{MISSING_KEY}"
    assert "no image member" in missing["error_message"]


def test_records_hold_alt_text_detections_and_verified_relations(clean):
    samples = list(wds.WebDataset(str(clean / "{00000..00002}.tar"), shardshuffle=False))
    assert len(samples) == 7
    relations = 0
    for sample in samples:
        record = json.loads(sample["json"])
        validate(record, "scene_graph")
        assert ("jpg" in sample) != ("png" in sample)  # the image's own bytes and extension
        key = record["source_key"]
        assert record["key"] == f"web-{int(key):012d}" and record["metadata"]["key"] == key
        assert [(c["id"], c["source"]) for c in record["captions"]] == [(0, "alt_text")]
        assert record["captions"][0]["text"] in ALT_TEXTS
        objects = record["objects"]
        assert objects and all(o["source"] == "detector" and 0.3 <= o["score"] <= 1 for o in objects)
        phrases = {e for t in record["triplets"] for e in (t["subject"], t["object"])}
        assert {o["category"] for o in objects} <= phrases and len(objects) <= 6
        ids = {o["id"]: o["category"] for o in objects}
        for relation in record["relations"]:
            triplet = record["triplets"][relation["triplet_id"]]
            grounded = (ids[relation["subject_id"]], ids[relation["object_id"]])
            assert grounded == (triplet["subject"], triplet["object"])
            assert 0 <= relation["confidence"] <= 1
        relations += len(record["relations"])
        assert set(record["provenance"]["models"]) >= {"detect", "verify"}
    assert relations, "the alt texts' triplets ground on the boxes their phrases found"
    run = json.loads((clean / "run.json").read_text())
    validate(run, "run")
    assert run["models"]["detector"] and run["dataset"]["images"] is None  # tars are counted as read
    stats = json.loads((clean / "stats.json").read_text())
    validate(stats, "stats")
    assert stats["totals"]["count"] == 9 and stats["counters"]["detect_boxes"] == sum(
        len(json.loads(s["json"])["objects"]) for s in samples
    )


def test_leakage_finds_a_copy_and_exclude_leaves_it_out(tars, tmp_path):
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    (evaluation / "val_0042.jpg").write_bytes(jpeg_bytes(48, 40, seed=2))  # the bytes of item 000000001
    config = web_run_config([str(t) for t in tars], tmp_path / "out")
    summary = find_leakage(config, [str(evaluation)], tmp_path / "leak.json", threads=2)
    leaks = json.loads((tmp_path / "leak.json").read_text())
    assert [(m["image_id"], m["how"]) for m in leaks] == [(1, "bytes")]
    assert "1 missing" in summary  # the item without an image
    excluded = web_run_config(
        [str(t) for t in tars], tmp_path / "out", source__exclude=str(tmp_path / "leak.json"), source__limit=2
    )
    run_pipeline(excluded, QUIET)
    rows = pq.read_table(sorted((tmp_path / "out").glob("*.parquet"))).to_pylist()
    assert [(r["image_id"], r["status"]) for r in rows] == [(0, "ok"), (1, "excluded")]


def test_recipe_dry_run_with_a_limit(tars, tmp_path):
    result = CliRunner().invoke(app, [
        "run", "pipelines/webdataset.yaml", "--dry-run", "--limit", "4",
        "--set", f"source.shards={tars[0].parent}", "--set", f"output.dir={tmp_path / 'out'}",
        "--set", "caption.enabled=false", "--set", "verify.enabled=false", "--set", "detect.enabled=false",
        "--set", "tag.embedding_model=none",
    ])
    assert result.exit_code == 0, result.output
    assert "4 images in 2 shards (one per tar)" in result.output


def test_resume_from_what_a_kill_leaves_gives_the_same_bytes(clean, tars, dino, tiny_verifier, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    (out / "00001_stats.json").unlink()  # killed before shard 1's marker
    for name in ("00002.tar", "00002.parquet", "00002_stats.json"):
        (out / name).unlink()
    (out / ".00002.tar.tmp77").write_bytes(b"half a tar")  # killed while writing shard 2
    run_pipeline(_config(tars, out, dino, tiny_verifier), QUIET)
    assert _bytes(out) == _bytes(clean)
    assert not list(out.glob(".0*"))


def test_redo_failed_after_the_tar_is_fixed_gives_a_clean_runs_bytes(
    clean, tars, dino, tiny_verifier, tmp_path
):
    """The broken tar is downloaded again, whole: its shard alone is redone, to the bytes of a run that
    met the fixed tar first. (Last in the module: it replaces tar 1 for the test, then puts it back.)"""
    out, reference = tmp_path / "out", tmp_path / "reference"
    shutil.copytree(clean, out)
    untouched = {n: (out / n).stat().st_mtime_ns for n in ("00000.tar", "00002.tar")}
    broken = tars[1].read_bytes()
    write_tar(tars[1], [item_members(f"0000100{i:02d}", seed=4 + i) for i in range(3)])
    try:
        run_pipeline(_config(tars, out, dino, tiny_verifier), REDO)
        run_pipeline(_config(tars, reference, dino, tiny_verifier), QUIET)
    finally:
        tars[1].write_bytes(broken)
    assert _bytes(out) == _bytes(reference)
    assert {n: (out / n).stat().st_mtime_ns for n in untouched} == untouched
    assert json.loads((out / "stats.json").read_text())["status"] == {"ok": 9}
    assert [r["shards"] for r in json.loads((out / "run.json").read_text())["redone"]] == [[1]]
