"""The trainer's loader, vocabulary scan and evaluation reader on shards in a bucket (moto's S3 server)."""

from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from sgpipe.shards import expand_urls, iter_shard_samples
from sgpipe.train.data import ShardStream, scan_predicates
from sgpipe.train.loop import _count_samples
from tests.helpers.s3 import S3Calls, s3_server, upload_folder
from tests.helpers.train_shards import make_shards


@pytest.fixture(scope="module")
def s3opts():
    with s3_server() as options:
        yield options


@pytest.fixture(scope="module")
def shards(s3opts, tmp_path_factory):
    local = tmp_path_factory.mktemp("shards")
    urls = make_shards(local, n_shards=4, per_shard=3)
    upload_folder(s3opts, local, "s3://bucket/shards")
    return urls, expand_urls("s3://bucket/shards", s3opts)


def _keys(urls, options, workers):
    stream = ShardStream(
        urls,
        rank=0,
        world_size=1,
        seed=3,
        epoch=1,
        batch_size=2,
        image_size=32,
        frequencies={"left of": 5, "right of": 5},
        shuffle_buffer=4,
        passes=1,
        storage_options=options,
    )
    loader = DataLoader(stream, batch_size=None, num_workers=workers)
    return [key for batch in loader for key in batch["keys"]]


def test_a_bucket_folder_expands_to_its_shards_with_one_listing(s3opts, shards):
    calls = S3Calls(s3opts)
    urls = expand_urls("s3://bucket/shards", s3opts)
    assert urls == [f"s3://bucket/shards/{i:05d}.tar" for i in range(4)]
    assert calls.listed_prefixes == ["shards/"]


@pytest.mark.parametrize("workers", [0, 2])
def test_the_loader_streams_the_same_batches_from_a_bucket_as_from_disk(s3opts, shards, workers):
    local, remote = shards
    from_disk = _keys(local, {}, workers)
    assert len(from_disk) == 12
    assert _keys(remote, s3opts, workers) == from_disk


def test_vocabulary_scan_sample_count_and_evaluation_reader_on_a_bucket(s3opts, shards):
    local, remote = shards
    assert scan_predicates(remote, 0.5, options=s3opts) == scan_predicates(local, 0.5)
    assert _count_samples(remote, s3opts) == _count_samples(local, {}) == 12
    assert [s.key for s in iter_shard_samples(remote, s3opts)] == [s.key for s in iter_shard_samples(local)]


def test_inspect_reads_a_bucket_with_the_endpoint_from_the_environment(s3opts, shards, monkeypatch):
    import fsspec

    from sgpipe.tools.inspect_shards import inspect_shards

    local, _ = shards
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3opts["endpoint_url"])  # no storage options at all
    fsspec.filesystem("s3").clear_instance_cache()
    remote = inspect_shards("s3://bucket/shards", limit=1)
    assert remote == inspect_shards(str(Path(local[0]).parent), limit=1)
    assert remote.startswith("4 shards, 12 samples")
