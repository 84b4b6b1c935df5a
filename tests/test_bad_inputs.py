"""Every case of the bad-input corpus through the real stages: each entry gets its status."""


import pyarrow.parquet as pq
import pytest

from sgpipe.shards import iter_shard_samples
from sgpipe.source.plan import build_plan, plan_dir_of
from tests.corpus.dataset import BOX_CASES, CAPTION_CASES, expected_statuses, make_bad_dataset
from tests.helpers.runs import planned_processor, tiny_run_config
from tests.helpers.schemas import validate


@pytest.fixture(scope="module")
def corpus_output(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    paths = make_bad_dataset(root / "data")
    config = tiny_run_config(paths, root / "out", output__samples_per_shard=8, source__max_pixels=10**8)
    processor = planned_processor(config)
    n_shards = build_plan(config.source, config.output.samples_per_shard, plan_dir_of(root / "out")).n_shards
    shard_stats = [processor.process_shard(i) for i in range(n_shards)]
    return root / "out", shard_stats


def test_each_entry_gets_exactly_its_status(corpus_output):
    out, _ = corpus_output
    rows = pq.read_table(sorted(out.glob("*.parquet"))).to_pylist()
    assert [(r["image_id"], r["status"]) for r in rows] == expected_statuses()
    assert all(r["error_message"] for r in rows if r["status"] != "ok")
    assert all(not r["error_message"] for r in rows if r["status"] == "ok")


def test_ok_records_are_valid_and_bad_boxes_are_counted(corpus_output):
    out, shard_stats = corpus_output
    records = {s.record["image_id"]: s.record for s in iter_shard_samples(str(out))}
    for record in records.values():
        validate(record, "scene_graph")
    for image_id, (_, kept, _) in BOX_CASES.items():
        assert len(records[image_id]["objects"]) == kept
    counters = {}
    for stats in shard_stats:
        for name, value in stats["counters"].items():
            counters[name] = counters.get(name, 0) + value
    for name, value in BOX_CASES[33][2].items():
        assert counters[name] == value, name
    assert counters["exif_rotated"] == 1


def test_odd_captions_give_no_triplets_but_never_fail(corpus_output):
    out, _ = corpus_output
    records = {s.record["image_id"]: s.record for s in iter_shard_samples(str(out))}
    for image_id in CAPTION_CASES:
        assert image_id in records
    for image_id in (20, 23, 24):
        assert records[image_id]["triplets"] == []
    assert len(records[21]["captions"][0]["text"]) > 4000  # the caption is kept whole in the record
    many = records[32]
    assert len(many["relations"]) <= 8 * max(1, len(many["triplets"]))  # 500 boxes, capped pairs
