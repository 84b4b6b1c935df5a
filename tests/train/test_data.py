import io
import random
from collections import Counter

from PIL import Image
from torch.utils.data import DataLoader

from sgpipe.train.data import PredicateSampler, ShardStream, record_example, scan_predicates
from tests.helpers.train_shards import make_shards, squares_sample


def _keys_seen(urls, rank, world_size, workers, epoch=0, skip=0, passes=1):
    stream = ShardStream(
        urls,
        rank=rank,
        world_size=world_size,
        seed=3,
        epoch=epoch,
        batch_size=2,
        image_size=32,
        frequencies={"left of": 5, "right of": 5},
        shuffle_buffer=4,
        skip_batches=skip,
        passes=passes,
    )
    loader = DataLoader(stream, batch_size=None, num_workers=workers)
    return [key for batch in loader for key in batch["keys"]]


def test_two_ranks_two_workers_see_every_sample_once_per_epoch(tmp_path):
    urls = make_shards(tmp_path, n_shards=8, per_shard=4)
    seen = _keys_seen(urls, 0, 2, 2) + _keys_seen(urls, 1, 2, 2)
    assert len(seen) == 32 and len(set(seen)) == 32
    # another epoch: the same samples, in another order
    again = _keys_seen(urls, 0, 2, 2, epoch=1) + _keys_seen(urls, 1, 2, 2, epoch=1)
    assert sorted(again) == sorted(seen) and again != seen


def test_order_is_deterministic_and_skip_resumes_mid_epoch(tmp_path):
    urls = make_shards(tmp_path, n_shards=4, per_shard=4)
    full = _keys_seen(urls, 0, 1, 2)
    assert full == _keys_seen(urls, 0, 1, 2)
    assert _keys_seen(urls, 0, 1, 2, skip=3) == full[3 * 2 :]


def test_cycling_stream_never_runs_dry(tmp_path):
    urls = make_shards(tmp_path, n_shards=2, per_shard=3)
    stream = ShardStream(
        urls,
        rank=1,
        world_size=2,
        seed=0,
        epoch=0,
        batch_size=2,
        image_size=32,
        frequencies={"left of": 1},
        passes=None,
    )
    batches = iter(stream)
    keys = [k for _ in range(6) for k in next(batches)["keys"]]
    # one 3-sample shard per pass on rank 1, passes after passes (shard order reshuffled per pass)
    assert len(keys) == 12 and len(set(keys[:3])) == 3 and len(set(keys)) <= 6


def test_record_example_targets_and_negatives(tmp_path):
    sample = squares_sample(7, random.Random(1))
    record = sample.to_record({})
    image = Image.open(io.BytesIO(sample.image_bytes))
    sampler = PredicateSampler({"left of": 10, "right of": 10, "above": 5, "on": 1})
    example = record_example(
        record, image, 32, sampler=sampler, rng=random.Random(0), negative_predicates=2, negative_pairs=2
    )
    truth = {r.predicate: r.confidence for r in sample.relations}
    assert example.predicates[:2] == list(truth) and len(example.predicates) == 4
    assert len(example.pairs) == 3  # the related pair + two other ordered box pairs
    assert example.targets[0, 0] == 1.0 and example.targets.sum() == 1.0
    uncertain = dict(record, relations=[dict(record["relations"][0], confidence=0.3)])
    ignored = record_example(uncertain, image, 32)
    assert ignored.targets[0, 0] == -1.0  # between the thresholds: left out of the loss


def test_predicate_sampler_prefers_frequent_predicates():
    sampler = PredicateSampler({"common": 10000, "rare": 1}, power=1.0)
    picks = Counter(sampler.sample(random.Random(i), 1, set())[0] for i in range(200))
    assert picks["common"] > 190
    assert sampler.sample(random.Random(0), 5, {"common"}) == ["rare"]


def test_scan_predicates_counts_positives_only(tmp_path):
    urls = make_shards(tmp_path, n_shards=1, per_shard=5)
    counts = scan_predicates(urls, min_confidence=0.5)
    assert sum(counts.values()) == 5 and set(counts) <= {"left of", "right of"}


def test_a_corrupted_shard_is_skipped_with_a_count_and_the_epoch_goes_on(tmp_path, caplog):
    urls = make_shards(tmp_path, n_shards=3, per_shard=4)
    data = open(urls[1], "rb").read()
    open(urls[1], "wb").write(data[: len(data) // 3])  # truncated mid-member
    with open(urls[2], "r+b") as handle:  # a record that is not JSON
        content = handle.read()
        start = content.index(b'{"schema_version"')
        handle.seek(start)
        handle.write(b"#" * 20)
    keys = _keys_seen(urls, 0, 1, 0)
    assert 4 <= len(keys) < 12 and len(keys) == len(set(keys))
    assert any("skipping unreadable training data" in r.message for r in caplog.records)
    counts = scan_predicates(urls, min_confidence=0.5)  # the vocabulary scan survives it too
    assert counts
