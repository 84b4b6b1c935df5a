"""img2dataset-style tars: items, keys and image ids, bad members, truncation, and planning."""

import hashlib
import io
import json
import tarfile

import pytest

from sgpipe.config import SourceConfig
from sgpipe.errors import SourceError
from sgpipe.source.items import MAX_IMAGE_ID, image_id_of_key
from sgpipe.source.plan import build_plan
from sgpipe.source.readers import ShardReader
from sgpipe.source.webdataset import count_tar_items, read_tar, split_member
from tests.helpers.images import jpeg_bytes
from tests.helpers.web_fixture import ALT_TEXTS, make_img2dataset


def _tar(path, members):
    """A tar of (name, bytes) in this order, written with tarfile (webdataset's writer orders keys)."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_items_in_member_order_with_alt_text_metadata_and_statuses(tmp_path):
    tars = make_img2dataset(tmp_path, n_tars=2, per_tar=3)
    items = list(read_tar(str(tars[1])))
    assert [i.entry.source_key for i in items] == ["000010000", "000010001", "000010002"]
    assert [i.entry.image_id for i in items] == [10000, 10001, 10002]  # the keys' integers
    first = items[0]
    assert first.entry.file_name == "00001.tar/000010000.jpg"
    assert [(c.id, c.text, c.source) for c in first.entry.captions] == [(0, ALT_TEXTS[4 % 4], "alt_text")]
    assert first.entry.metadata["url"] == "https://example.com/000010000.jpg"
    assert first.image[:2] == b"\xff\xd8" and not first.entry.failure
    assert items[1].image == b"not a jpeg" and not items[1].entry.failure  # judged by the decode stage
    missing = items[2].entry
    assert missing.failure == "failed_missing" and items[2].image is None
    expected = "no image member for key '000010002' in 00001.tar (found KEY.json, KEY.txt)"
    assert missing.failure_message == expected
    assert missing.captions[0].text == ALT_TEXTS[6 % 4]  # its alt text is kept in the row's counts


def test_image_ids_of_keys():
    assert image_id_of_key("000010002") == 10002
    assert image_id_of_key("0") == 0
    # words, paths, digits over 63 bits, non-ASCII digits
    for key in ("cat_01", "a/b", "9" * 30, "１２", "x" * 500):
        digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
        expected = int.from_bytes(digest, "big") % (1 << 63)
        assert image_id_of_key(key) == expected <= MAX_IMAGE_ID
    assert image_id_of_key(str(MAX_IMAGE_ID)) == MAX_IMAGE_ID


def test_member_names_split_at_the_first_dot_of_the_file_name():
    assert split_member("000123.jpg") == ("000123", "jpg")
    assert split_member("dir/sub/x.seg.PNG") == ("dir/sub/x", "seg.png")
    assert split_member("README") == ("README", "")


def test_bad_members_get_statuses_and_never_stop_the_tar(tmp_path):
    image = jpeg_bytes(16, 16, 1)
    url = _tar(
        tmp_path / "odd.tar",
        [
            ("a.jpg", image), ("a.txt", b"a dog"), ("a.seg.png", b"x"), ("a.cls", b"3"),  # extras skipped
            ("b.txt", "un chien \udcff".encode("utf-8", "surrogateescape")),  # no image; not UTF-8
            ("c.json", b'{"w": NaN}'), ("c.webp", image),  # unreadable metadata
            ("a.jpg", image),  # key a again, not adjacent: a repeated item
            ("README", b"no extension"), ("007.png", image), ("7.jpg", image),  # image id 7 twice
        ],
    )
    items = list(read_tar(url))
    rows = [(i.entry.source_key, i.entry.failure, i.entry.duplicate, i.image is not None) for i in items]
    assert rows == [
        ("a", "", False, True),
        ("b", "failed_missing", False, False),
        ("c", "", False, True),
        ("a", "", True, False),
        ("007", "", False, True),
        ("7", "", True, False),  # another key, the same image id: the first one wins
    ]
    counters = [i.entry.counters for i in items]
    assert counters[0] == {"source_members_ignored": 2}
    assert counters[1] == {"source_alt_text_not_utf8": 1}
    assert counters[2] == {"source_metadata_unreadable": 1} and items[2].entry.metadata is None
    assert counters[4] == {"source_members_ignored": 1}  # the nameless README, counted on the next item
    assert count_tar_items(url) == len(items) == 6
    assert [i.entry.source_key for i in read_tar(url, limit=2)] == ["a", "b"]


def test_a_truncated_tar_keeps_the_items_before_the_cut(tmp_path):
    url = _tar(tmp_path / "whole.tar", [(f"{k}.jpg", jpeg_bytes(64, 64, k)) for k in range(3)])
    with tarfile.open(url) as tar:
        second = tar.getmembers()[1]
    cut = tmp_path / "cut.tar"
    cut.write_bytes(open(url, "rb").read()[: second.offset_data + second.size // 2])  # inside image 1
    items = list(read_tar(str(cut)))
    assert [(i.entry.source_key, i.entry.failure) for i in items] == [("0", ""), ("1", "failed_decode")]
    assert items[1].entry.counters == {"source_tar_truncated": 1}
    assert "the tar ends inside this item" in items[1].entry.failure_message
    assert count_tar_items(str(cut)) == 2


def test_a_tar_that_cannot_be_read_is_a_source_error(tmp_path):
    (tmp_path / "junk.tar").write_bytes(b"this is no tar" * 100)
    with pytest.raises(SourceError, match="not a readable tar"):
        list(read_tar(str(tmp_path / "junk.tar")))
    with pytest.raises(SourceError, match="cannot read tar"):
        list(read_tar(str(tmp_path / "absent.tar")))


def _source(spec, **kw):
    return SourceConfig(kind="webdataset", name="web", shards=spec, **kw)


def test_one_shard_per_tar_however_the_tars_are_named(tmp_path):
    tars = make_img2dataset(tmp_path / "d", n_tars=3, per_tar=2, broken=False)
    urls = [str(t) for t in tars]
    for spec in ([str(tmp_path / "d")], [str(tmp_path / "d" / "{00000..00002}.tar")], urls):
        plan = build_plan(_source(spec), 1000, tmp_path / "plan")
        assert plan.inputs == urls and plan.shard_sizes == [None, None, None] and plan.n_images is None
    reader = ShardReader(_source(urls), tmp_path / "plan")
    assert [e.source_key for e, _ in reader.items(2)] == ["000020000", "000020001"]
    with pytest.raises(SourceError, match="the same tar twice"):
        build_plan(_source([urls[0], str(tmp_path / "d")]), 1000, tmp_path / "other")


def test_limit_counts_the_first_tars_and_caps_the_last(tmp_path):
    urls = [str(t) for t in make_img2dataset(tmp_path / "d", n_tars=3, per_tar=3)]
    plan = build_plan(_source(urls, limit=4), 1000, tmp_path / "plan")
    assert plan.inputs == urls[:2] and plan.shard_sizes == [3, 1] and plan.n_images == 4
    reader = ShardReader(_source(urls, limit=4), tmp_path / "plan")
    assert [e.source_key for e, _ in reader.items(1)] == ["000010000"]
    manifest = tmp_path / "plan" / "plan.json"
    stamp = manifest.stat().st_mtime_ns
    assert build_plan(_source(urls, limit=4), 1000, tmp_path / "plan") == plan
    assert manifest.stat().st_mtime_ns == stamp  # reused: no tar read again
    assert json.loads(manifest.read_text())["kind"] == "webdataset"
