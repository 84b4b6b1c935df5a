"""Tars in a bucket (a real S3 API: moto's server): the folder is listed once, each tar read once."""

import pytest

from sgpipe.config import build_config
from sgpipe.source.plan import build_plan
from sgpipe.source.readers import ShardReader
from tests.helpers.s3 import S3Calls, s3_server, upload_folder
from tests.helpers.web_fixture import make_img2dataset


@pytest.fixture(scope="module")
def s3opts():
    with s3_server() as options:
        yield options


def test_a_bucket_of_tars_is_listed_once_and_each_tar_fetched_once(s3opts, tmp_path):
    local = tmp_path / "tars"
    make_img2dataset(local, n_tars=3, per_tar=3)
    upload_folder(s3opts, local, "s3://bucket/cc")
    source = {"kind": "webdataset", "shards": "s3://bucket/cc", "storage_options": s3opts}
    config = build_config({"source": source, "output": {"dir": str(tmp_path / "out")}})
    calls = S3Calls(s3opts)
    plan = build_plan(config.source, 1000, tmp_path / "plan")
    assert plan.inputs == [f"s3://bucket/cc/0000{i}.tar" for i in range(3)]
    assert calls.listed_prefixes == ["cc/"] and calls.count("GetObject") == 0  # the plan reads no tar
    reader = ShardReader(config.source, tmp_path / "plan")
    keys = [[e.source_key for e, _ in reader.items(i)] for i in range(3)]
    assert keys[1] == ["000010000", "000010001", "000010002"]
    assert calls.count("GetObject") == 3 and calls.listed_prefixes == ["cc/"]
    again = build_plan(config.source, 1000, tmp_path / "plan")  # a resumed run: one listing, plan reused
    assert again == plan and calls.listed_prefixes == ["cc/", "cc/"]
