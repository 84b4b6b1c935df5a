import json
from pathlib import Path

import ijson
import pyarrow.parquet as pq
import pytest

from sgpipe.errors import SgpipeError
from sgpipe.tools import export as export_module
from sgpipe.tools.export import export
from tests.helpers.tiny_shards import make_output

VOCAB_REFERENCE = (
    Path(__file__).resolve().parents[3] / "shared/data/vocab/rlipv2_coco_pseudolabel_vocab_freq.json"
)


def test_rlipv2_export_keeps_verified_kept_relations(tmp_path):
    make_output(tmp_path / "out", n_images=5, per_shard=2)
    summary = export(tmp_path / "out", "rlipv2", tmp_path / "rel.json")
    items = json.loads((tmp_path / "rel.json").read_text())
    assert "5 images and 4 relationships" in summary
    assert [i["image_id"] for i in items] == [1, 2, 3, 4, 5]
    first = items[0]
    assert first["objects"][0] == {"object_id": 11, "x": 2, "y": 2, "w": 20, "h": 30, "names": "person"}
    assert first["relationships"] == [
        {"relationship_id": 0, "predicate": "riding", "subject_id": 11, "object_id": 13, "confidence": 0.8}
    ]  # the surface text RLIPv2's labels hold (these records predate predicate_text: their triplet's)
    ids = [r["relationship_id"] for i in items for r in i["relationships"]]
    assert ids == list(range(len(ids)))  # unique across the export
    assert items[2]["relationships"] == [] and len(items[2]["objects"]) == 3
    vocab = json.loads((tmp_path / "rel_vocab_freq.json").read_text())
    assert vocab == {
        "relationship_names": ["riding"],
        "object_names": ["bicycle", "dog", "person"],
        "relationship_freq": {"riding": 4},
        "object_freq": {"bicycle": 5, "dog": 5, "person": 5},
    }
    # the file streams: an incremental parser reads it item by item
    with open(tmp_path / "rel.json", "rb") as handle:
        assert sum(1 for _ in ijson.items(handle, "item")) == 5


def test_rlipv2_unverified_exports_all_and_min_confidence_filters(tmp_path):
    make_output(tmp_path / "raw", n_images=2, per_shard=2, verified=False, failed=0)
    export(tmp_path / "raw", "rlipv2", tmp_path / "raw.json")
    items = json.loads((tmp_path / "raw.json").read_text())
    assert [(r["predicate"], r.get("confidence", "none")) for r in items[0]["relationships"]] == [
        ("riding", "none"),
        ("next to", "none"),
    ]  # no confidence key: RLIPv2 reads such relations as ground truth
    make_output(tmp_path / "ver", n_images=2, per_shard=2, failed=0)
    export(tmp_path / "ver", "rlipv2", tmp_path / "low.json", min_confidence=0.05)
    items = json.loads((tmp_path / "low.json").read_text())
    assert [r["predicate"] for r in items[0]["relationships"]] == ["riding", "next to"]  # dropped one included
    export(tmp_path / "raw", "rlipv2", tmp_path / "none.json", min_confidence=0.05)
    assert all(not i["relationships"] for i in json.loads((tmp_path / "none.json").read_text()))


def test_vocab_file_has_rlipv2_shape(tmp_path):
    make_output(tmp_path / "out", n_images=2, per_shard=2)
    export(tmp_path / "out", "rlipv2", tmp_path / "rel.json")
    vocab = json.loads((tmp_path / "rel_vocab_freq.json").read_text())
    assert list(vocab) == ["relationship_names", "object_names", "relationship_freq", "object_freq"]
    if VOCAB_REFERENCE.is_file():  # optional: compare with RLIPv2's own file when the shared data is present
        reference = json.loads(VOCAB_REFERENCE.read_text())
        assert list(reference) == list(vocab)
        assert all(type(reference[k]) is type(vocab[k]) for k in vocab)
        # RLIPv2's labels name relations by their surface text, as the export does: "riding", never "ride"
        assert "riding" in vocab["relationship_names"] and "riding" in reference["relationship_names"]
        assert "ride" not in reference["relationship_names"]


def test_parquet_export_is_a_flat_relations_table_in_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "ROW_GROUP", 3)
    make_output(tmp_path / "out", n_images=5, per_shard=2)
    summary = export(tmp_path / "out", "parquet", tmp_path / "rel.parquet")
    assert "8 relations of 5 images" in summary
    parquet = pq.ParquetFile(tmp_path / "rel.parquet")
    assert parquet.metadata.num_row_groups > 1  # written incrementally
    rows = parquet.read().to_pylist()
    assert len(rows) == 8
    row = rows[0]
    assert row["key"] == "t-000000000001" and row["subject_category"] == "person"
    assert row["object_category"] == "bicycle" and row["subject_bbox"] == [2, 2, 20, 30]
    assert row["predicate"] == "ride" and row["kept"] is True and row["support"] == 2
    assert row["confidence"] == pytest.approx(0.8) and row["tag_score"] == pytest.approx(0.9)
    export(tmp_path / "out", "parquet", tmp_path / "high.parquet", min_confidence=0.5)
    assert {r["predicate"] for r in pq.read_table(tmp_path / "high.parquet").to_pylist()} == {"ride"}


def test_export_rejects_unknown_format_and_bad_threshold(tmp_path):
    make_output(tmp_path / "out", n_images=1, per_shard=1, failed=0)
    with pytest.raises(SgpipeError, match="Choose from: rlipv2, parquet"):
        export(tmp_path / "out", "coco", tmp_path / "x")
    with pytest.raises(SgpipeError, match="within"):
        export(tmp_path / "out", "rlipv2", tmp_path / "x.json", min_confidence=2.0)
    assert not (tmp_path / "x.json").exists()
