"""A run with `parse.backend: seq2seq` on Ray: grounded records, stats, resume to the same bytes."""

import json
import shutil

import pytest
import webdataset as wds

from sgpipe.run import run_pipeline
from tests.helpers.cli_runs import kill_after_shards, start_run, write_recipe
from tests.helpers.coco_fixture import make_coco
from tests.helpers.outputs import complete_shards, shard_bytes
from tests.helpers.runs import QUIET, tiny_run_config
from tests.helpers.schemas import validate


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_coco(tmp_path_factory.mktemp("coco"), n_images=4)


def seq2seq_run_config(dataset, out, model, **overrides):
    overrides.setdefault("output__samples_per_shard", 2)
    return tiny_run_config(
        dataset,
        out,
        run__workers=1,
        parse__backend="seq2seq",
        parse__model=str(model),
        parse__batch_size=2,  # several generate calls per chunk: batch composition is part of the bytes
        parse__max_new_tokens=40,
        **overrides,
    )


@pytest.fixture(scope="module")
def reference(dataset, tiny_factual_t5, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    run_pipeline(seq2seq_run_config(dataset, out, tiny_factual_t5), QUIET)
    return out


def test_a_seq2seq_run_writes_grounded_records_from_the_generated_graphs(reference, tiny_factual_t5):
    records = [
        json.loads(s["json"])
        for s in wds.WebDataset(str(reference / "{00000..00001}.tar"), shardshuffle=False)
    ]
    assert len(records) == 4
    for record in records:
        validate(record, "scene_graph")
        keys = [(t["subject"], t["predicate"], t["object"]) for t in record["triplets"]]
        assert keys == [
            ("man", "ride", "bicycle"),
            ("man", "next to", "dog"),
            ("dog", "sit next to", "person"),
            ("person", "stand behind", "bicycle"),
        ]
        assert record["triplets"][2]["predicate_text"] == "sitting next to"
        assert record["relations"], "the tag stage grounds the generated triplets on the boxes"
        parse = record["provenance"]["models"]["parse"]
        assert parse["backend"] == "seq2seq" and parse["model"] == str(tiny_factual_t5)
    stats = json.loads((reference / "stats.json").read_text())
    # per image: one quantity attribute ( person , is , 2 ), one tuple cut off by the token limit
    assert stats["counters"]["parse_attributes"] == 4
    assert stats["counters"]["parse_tuples_malformed"] == 4
    run = json.loads((reference / "run.json").read_text())
    assert run["models"]["parser"] == str(tiny_factual_t5)
    for name, schema in (("run.json", "run"), ("stats.json", "stats"), ("shardindex.json", "shardindex")):
        validate(json.loads((reference / name).read_text()), schema)
    for path in reference.glob("*_stats.json"):
        validate(json.loads(path.read_text()), "shard_stats")


def test_resume_gives_the_same_bytes_with_the_seq2seq_backend(dataset, reference, tiny_factual_t5, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    tar0 = (out / "00000.tar").read_bytes()
    for name in ("00000.tar", "00000.parquet", "00000_stats.json", "00001_stats.json", "stats.json"):
        (out / name).unlink()
    (out / ".00000.tar.tmp4242").write_bytes(tar0[: len(tar0) // 2])  # killed mid-write
    run_pipeline(seq2seq_run_config(dataset, out, tiny_factual_t5), QUIET)  # both shards redone
    assert shard_bytes(out) == shard_bytes(reference)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_bytes_with_the_seq2seq_backend(
    dataset, tiny_factual_t5, tmp_path
):
    def config(out):
        return seq2seq_run_config(dataset, out, tiny_factual_t5, output__samples_per_shard=1)

    reference = tmp_path / "reference"
    run_pipeline(config(reference), QUIET)
    out = tmp_path / "killed"
    process = start_run(write_recipe(config(out), tmp_path / "recipe.yaml"), factory="stages_with_a_pause")
    kill_after_shards(process, lambda: complete_shards(out), 2, total=4, timeout=300)
    run_pipeline(config(out), QUIET)
    assert shard_bytes(out) == shard_bytes(reference)
