"""The webdataset source on tars written by img2dataset itself (tests/source/img2dataset_fixture, made by
tools/img2dataset_reference/make_fixture.py with img2dataset 1.47.0 downloading from a local server):
every downloaded image arrives with its own alt text, metadata and pixels; the URL that answered 404 is
in img2dataset's parquet only, so it is not an image of the run."""

import io
import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from sgpipe.run import run_pipeline
from tests.helpers.runs import QUIET
from tests.helpers.web_fixture import web_run_config

FIXTURE = Path(__file__).parent / "img2dataset_fixture"


def _records(out: Path) -> dict[str, tuple[dict, bytes]]:
    """source_key -> (record, image bytes) of every shard in `out`."""
    found = {}
    for path in sorted(out.glob("*.tar")):
        with tarfile.open(path) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        for name, data in members.items():
            if name.endswith(".json"):
                record = json.loads(data)
                image = next(v for k, v in members.items() if k.startswith(record["key"] + ".") and k != name)
                found[record["source_key"]] = (record, image)
    return found


def test_img2dataset_tars_give_each_image_its_alt_text_metadata_and_pixels(tmp_path):
    expected = json.loads((FIXTURE / "expected.json").read_text())
    out = tmp_path / "out"
    run_pipeline(web_run_config([str(FIXTURE)], out, run__workers=1), QUIET)

    # img2dataset's own account: its parquets list every URL with its key and outcome
    theirs = [row for path in sorted(FIXTURE.glob("*.parquet")) for row in pq.read_table(path).to_pylist()]
    downloaded = {row["key"]: row for row in theirs if row["status"] == "success"}
    assert sorted(Path(row["url"]).name for row in theirs if row["status"] != "success") == ["gone.jpg"]

    rows = [row for path in sorted(out.glob("*.parquet")) for row in pq.read_table(path).to_pylist()]
    assert len(rows) == len(downloaded) == len(expected["downloaded"])
    assert {row["status"] for row in rows} == {"ok"} and all(row["n_captions"] == 1 for row in rows)
    records = _records(out)
    assert set(records) == set(downloaded)  # the 404 is nowhere in the run
    for key, (record, image) in records.items():
        name = Path(downloaded[key]["url"]).name
        assert record["image_id"] == int(key)  # img2dataset's keys are digits: their integer
        assert [(c["text"], c["source"]) for c in record["captions"]] == [
            (expected["downloaded"][name]["alt_text"], "alt_text")
        ]
        assert record["metadata"]["url"] == downloaded[key]["url"]
        original = [record["metadata"]["original_width"], record["metadata"]["original_height"]]
        assert original == expected["downloaded"][name]["size"]
        with Image.open(io.BytesIO(image)) as decoded:  # the tar's bytes, as img2dataset re-encoded them
            assert decoded.size == (record["width"], record["height"])
            assert decoded.size == (record["metadata"]["width"], record["metadata"]["height"])
    riding = next(r for r, _ in records.values() if "riding" in r["captions"][0]["text"])
    assert [(t["subject"], t["predicate"], t["object"]) for t in riding["triplets"]] == [
        ("man", "ride", "bicycle")
    ]
