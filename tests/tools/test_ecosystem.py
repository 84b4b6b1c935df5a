"""Shards load with the ecosystem's readers: Hugging Face `datasets` and `ray.data.read_webdataset`."""

import os

import pytest

from sgpipe.output.writer import write_shard
from sgpipe.records import Box, Caption
from sgpipe.shards import expand_urls
from tests.helpers.ray_local import local_ray
from tests.helpers.tiny_shards import PROVENANCE, output_sample

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def _tricky_output(out, images=True):
    """Shard 0 holds nothing that types the later fields: no relations, no triplets, null caption models.

    Shard 1 has relations, model captions with a decoding dict, other provenance keys, another image size:
    schema inference from the first shard alone cannot type it.
    """
    first = [output_sample(i, relations=False) for i in (1, 2)]
    second = [output_sample(i, width=80, height=40) for i in (3, 4)]
    for sample in second:
        sample.captions.append(
            Caption(1, "a dog on a bike", "model", "tiny-blip", {"top_p": 0.9, "max_length": 20})
        )
    # an image-text item: a detected box, its source key and metadata
    second[1].objects.append(Box(99, "kite", -1, [1, 1, 4, 4], source="detector", score=0.5))
    second[1].source_key, second[1].metadata = "000123", {"url": "https://example.com/a.jpg", "width": 80}
    write_shard(out, 0, first, PROVENANCE, write_images=images)
    write_shard(
        out, 1, second, dict(PROVENANCE, models={"verifier": "ckpt"}, source="x"), write_images=images
    )
    return first + second


def _as_loaded(record):
    """A record as typed features give it back: the fields it leaves out, null."""
    objects = [{"source": None, "score": None, **o} for o in record["objects"]]
    return {"source_key": None, "metadata": None, **record, "objects": objects}


@pytest.mark.parametrize("images", [True, False])
def test_hugging_face_datasets_loads_shards_with_sgpipe_features(tmp_path, images):
    from sgpipe.ecosystem import load_hf_dataset

    samples = _tricky_output(tmp_path / "out", images=images)
    ds = load_hf_dataset(
        tmp_path / "out", image_ext="jpg" if images else None, cache_dir=str(tmp_path / "cache")
    )
    assert ds.num_rows == 4
    assert ds["__key__"] == [s.key for s in samples]
    row = ds[3]
    record = row["json"]
    assert record == _as_loaded(samples[3].to_record(record["provenance"]))
    assert record["objects"][-1]["source"] == "detector" and record["metadata"]["width"] == 80
    assert ds[2]["json"] == _as_loaded(samples[2].to_record(ds[2]["json"]["provenance"]))
    assert record["captions"][1]["decoding"] == {"top_p": 0.9, "max_length": 20}
    assert record["relations"][0]["kept"] is True and record["relations"][1]["confidence"] == pytest.approx(
        0.1
    )
    assert record["provenance"]["models"] == {"verifier": "ckpt"}
    assert ds[0]["json"]["relations"] == [] and ds[0]["json"]["captions"][0]["model"] is None
    if images:
        assert row["jpg"].size == (80, 40) and ds[0]["jpg"].size == (64, 48)
    else:
        assert "jpg" not in ds.column_names


@pytest.fixture(scope="module")
def ray_session():
    with local_ray() as ray:
        ray.data.DataContext.get_current().enable_progress_bars = False
        yield ray


def test_ray_data_reads_shards(tmp_path, ray_session):
    samples = _tricky_output(tmp_path / "out")
    ds = ray_session.data.read_webdataset(expand_urls(tmp_path / "out"))
    rows = sorted(ds.take_all(), key=lambda r: r["__key__"])
    assert [r["__key__"] for r in rows] == [s.key for s in samples]
    assert rows[3]["json"]["relations"][0]["predicate"] == "ride"
    assert rows[0]["jpg"].shape == (48, 64, 3) and rows[3]["jpg"].shape == (40, 80, 3)  # decoded, mixed sizes


def test_ray_data_reads_label_only_shards_raw(tmp_path, ray_session):
    import json

    samples = _tricky_output(tmp_path / "out", images=False)
    ds = ray_session.data.read_webdataset(expand_urls(tmp_path / "out"), decoder=None)
    rows = sorted(ds.take_all(), key=lambda r: r["__key__"])
    assert [json.loads(r["json"])["key"] for r in rows] == [s.key for s in samples]
    assert "jpg" not in rows[0]
