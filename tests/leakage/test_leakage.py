"""`sgpipe leakage`: near-copies found, distinct look-alikes not, ids and bytes matched, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from sgpipe.cli import app
from sgpipe.config import build_config
from sgpipe.errors import SgpipeError, SourceError
from sgpipe.leakage.copies import COPIES
from sgpipe.leakage.exclude import load_exclusions
from sgpipe.leakage.scan import DEFAULT_MAX_DISTANCE, find_leakage
from sgpipe.synth.world import generate_world
from tests.helpers.schemas import validate

# the copy kinds always within the default threshold (docs/BENCHMARKS.md): re-encoded, resized,
# cropped 2-4% (6% crops are found 93% of the time, one-corner crops 40%)
FOUND_KINDS = [kind for kind in COPIES if kind not in ("crop_6%", "crop_4%_corner")]
BYTE_COPY_ID, SAME_ID, MISSING_ID, UNREADABLE_ID = 301, 5, 401, 402


def _write_instances(path: Path, images: list[dict]) -> None:
    path.write_text(json.dumps({"images": images, "annotations": [], "categories": []}))


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    """An evaluation world, and a source holding copies of it, distinct synthetic images (the same
    shapes on the same kind of background), one id shared with the evaluation JSON, bad files."""
    root = tmp_path_factory.mktemp("leak")
    generate_world(root / "eval", 8, seed=1, image_size=192)
    generate_world(root / "other", 12, seed=2, image_size=192, first_image_id=101)
    evaluation = sorted((root / "eval" / "images").glob("*.jpg"))
    (root / "eval" / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "eval" / "images" / "README.txt").write_text("not an image")
    images_dir = root / "source"
    images_dir.mkdir()
    images = []

    def add(image_id: int, data: bytes | None, ext: str = "jpg") -> None:
        name = f"{image_id:012d}.{ext}"
        if data is not None:
            (images_dir / name).write_bytes(data)
        images.append({"id": image_id, "file_name": name, "width": 0, "height": 0})

    copies = {}
    for k, kind in enumerate(FOUND_KINDS):
        original = evaluation[k % len(evaluation)]
        image = Image.open(original)
        image.load()
        copies[201 + k] = original
        add(201 + k, COPIES[kind](image), "png" if kind == "png" else "jpg")
    for other in sorted((root / "other" / "images").glob("*.jpg")):
        add(int(other.stem), other.read_bytes())
    add(BYTE_COPY_ID, evaluation[3].read_bytes())
    add(SAME_ID, (root / "other" / "images" / "000000000101.jpg").read_bytes())  # other pixels, same id
    add(MISSING_ID, None)
    add(UNREADABLE_ID, b"GIF89a truncated")
    _write_instances(root / "source.json", sorted(images, key=lambda i: i["id"]))
    recipe = root / "recipe.yaml"
    recipe.write_text(
        f"source:\n  name: t\n  instances: {root / 'source.json'}\n  images: {images_dir}\n"
        f"caption:\n  enabled: true\noutput:\n  dir: {root / 'out'}\n  samples_per_shard: 7\n"
    )
    return {
        "root": root,
        "recipe": recipe,
        "eval_images": root / "eval" / "images",
        "eval_json": root / "eval" / "annotations" / "instances.json",
        "copies": copies,  # type: ignore[dict-item]
        "evaluation": evaluation,  # type: ignore[dict-item]
    }


def _config(sets):
    return build_config(
        {
            "source": {
                "name": "t",
                "instances": str(sets["root"] / "source.json"),
                "images": str(sets["root"] / "source"),
            },
            "caption": {"enabled": True},
            "output": {"dir": str(sets["root"] / "out"), "samples_per_shard": 7},
        },
    )


@pytest.fixture(scope="module")
def by_pixels(sets):
    out = sets["root"] / "pixels.json"
    summary = find_leakage(_config(sets), [str(sets["eval_images"])], out, threads=2)
    return json.loads(out.read_text()), summary


def test_near_copies_are_found_and_distinct_look_alikes_are_not(by_pixels, sets):
    matches, _ = by_pixels
    found = {m["image_id"]: m for m in matches}
    assert set(found) == set(sets["copies"]) | {BYTE_COPY_ID}
    for image_id, original in sets["copies"].items():
        assert found[image_id]["how"] == "phash" and found[image_id]["against"] == str(original)
        assert 0 <= found[image_id]["distance"] <= DEFAULT_MAX_DISTANCE


def test_an_identical_file_matches_by_bytes(by_pixels, sets):
    matches, _ = by_pixels
    byte_match = next(m for m in matches if m["image_id"] == BYTE_COPY_ID)
    assert byte_match["how"] == "bytes" and byte_match["distance"] == 0
    assert byte_match["against"] == str(sets["evaluation"][3])


def test_the_out_file_has_the_contract_shape(by_pixels):
    matches, _ = by_pixels
    validate(matches, "leakage")  # type: ignore[arg-type]
    assert [m["image_id"] for m in matches] == sorted(m["image_id"] for m in matches)
    assert set(matches[0]) == {"image_id", "file_name", "how", "against", "distance"}


def test_the_summary_bins_perceptual_matches_by_distance(by_pixels, sets):
    matches, summary = by_pixels
    line = next(text for text in summary.splitlines() if text.startswith("perceptual-hash matches"))
    counts = [int(part.split(": ")[1]) for part in line.split("distance: ")[1].split(", ")]
    assert sum(counts) == len(sets["copies"]) == sum(m["how"] == "phash" for m in matches)
    assert line.endswith(f"48-{DEFAULT_MAX_DISTANCE}: {counts[-1]}")


def test_bad_files_are_counted_not_fatal(by_pixels):
    _, summary = by_pixels
    assert "8 images hashed, 1 unreadable files skipped" in summary
    assert "broken.jpg" in summary
    assert "1 missing, 1 unreadable" in summary


def test_ids_match_against_a_coco_json(sets, tmp_path):
    out = tmp_path / "ids.json"
    summary = find_leakage(_config(sets), [str(sets["eval_json"])], out, threads=2)
    matches = json.loads(out.read_text())
    assert [(m["image_id"], m["how"], m["distance"]) for m in matches] == [(SAME_ID, "id", None)]
    assert matches[0]["against"] == str(sets["eval_json"])
    assert "8 image ids from JSON" in summary and "0 images hashed" in summary


def test_the_cli_writes_what_source_exclude_reads(sets, tmp_path):
    out = tmp_path / "leak.json"
    result = CliRunner().invoke(
        app,
        [
            "leakage",
            str(sets["recipe"]),
            "--against",
            str(sets["eval_images"]),
            "--against",
            str(sets["eval_json"]),
            "--out",
            str(out),
            "--threads",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    excluded = load_exclusions(out)
    assert set(excluded) == set(sets["copies"]) | {BYTE_COPY_ID, SAME_ID}
    assert excluded[SAME_ID].startswith("evaluation image: same image id in")
    assert excluded[BYTE_COPY_ID].startswith("evaluation image: same bytes as")
    assert "perceptual hash" in excluded[201]


def test_a_missing_against_path_is_an_error_before_any_work(sets, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "leakage",
            str(sets["recipe"]),
            "--against",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "o.json"),
        ],
    )
    assert result.exit_code == 2
    assert "no such file or folder" in result.output and "nowhere" in result.output
    assert not (tmp_path / "o.json").exists()


def test_a_json_without_images_is_refused_with_the_way_out(sets, tmp_path):
    other = tmp_path / "hico_test.json"
    other.write_text(json.dumps([{"file_name": "x.jpg", "hoi_annotation": []}]))
    with pytest.raises(SourceError, match="image folder"):
        find_leakage(_config(sets), [str(other)], tmp_path / "o.json")


def test_a_missing_source_folder_is_an_error(sets, tmp_path):
    config = _config(sets)
    config.source.images = str(tmp_path / "absent")
    with pytest.raises(SgpipeError, match="source.images"):
        find_leakage(config, [str(sets["eval_images"])], tmp_path / "o.json")


@pytest.mark.parametrize(
    "content, message",
    [("{}", "expected a JSON list"), ('[{"image_id": "7"}]', "integer 'image_id'"), ("[", "not valid JSON")],
)
def test_malformed_exclude_files_are_refused(tmp_path, content, message):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(SourceError, match=message):
        load_exclusions(path)


REAL_PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "coco8" / "images" / "train"


@pytest.mark.skipif(not REAL_PHOTOS.is_dir(), reason="optional real photos (../shared/data/coco8) absent")
def test_copies_of_real_photos_are_found_and_the_photos_are_told_apart(tmp_path):
    from sgpipe.leakage.hashing import hash_bytes, hash_file

    photos = sorted(REAL_PHOTOS.glob("*.jpg"))
    originals = [hash_file(p).phash for p in photos]
    for path, original in zip(photos, originals):
        image = Image.open(path)
        image.load()
        for kind in FOUND_KINDS:
            copy = hash_bytes(COPIES[kind](image)).phash
            nearest_original = min(originals, key=lambda h: (h ^ copy).bit_count())
            assert nearest_original == original and (original ^ copy).bit_count() <= DEFAULT_MAX_DISTANCE, (
                kind
            )
    for i, a in enumerate(originals):
        assert all((a ^ b).bit_count() > DEFAULT_MAX_DISTANCE for b in originals[i + 1 :])


def test_the_cli_help_states_the_default_threshold():
    result = CliRunner().invoke(app, ["leakage", "--help"], terminal_width=200)
    assert f"(default {DEFAULT_MAX_DISTANCE})" in " ".join(result.output.split())


def test_the_streaming_index_gives_the_same_matches(by_pixels, sets, tmp_path):
    config = _config(sets)
    config.source.index = "stream"  # how an Objects365-size source is planned
    out = tmp_path / "streamed.json"
    find_leakage(config, [str(sets["eval_images"])], out, threads=2)
    assert json.loads(out.read_text()) == by_pixels[0]


def test_a_source_in_a_bucket_gives_the_same_matches(by_pixels, sets, tmp_path):
    """`source.instances` and `source.images` as S3 URLs (moto's server on 127.0.0.1): the images
    are fetched by name under the same rules, so the matches equal the local source's."""
    from tests.helpers.s3 import s3, s3_server, upload_folder

    with s3_server() as options:
        upload_folder(options, sets["root"] / "source", "s3://bucket/source")
        s3(options).put_file(str(sets["root"] / "source.json"), "bucket/source.json")
        config = build_config(
            {
                "source": {
                    "name": "t",
                    "instances": "s3://bucket/source.json",
                    "images": "s3://bucket/source",
                },
                "caption": {"enabled": True},
                "output": {"dir": str(tmp_path / "out"), "samples_per_shard": 7},
            },
            [f"source.storage_options={json.dumps(options)}"],
        )
        out = tmp_path / "remote.json"
        summary = find_leakage(config, [str(sets["eval_images"])], out, threads=2)
        with pytest.raises(SgpipeError, match="source.instances: no such file 's3://bucket/absent.json'"):
            config.source.instances = "s3://bucket/absent.json"
            find_leakage(config, [str(sets["eval_images"])], tmp_path / "o.json")
    assert json.loads(out.read_text()) == by_pixels[0]
    assert _source_lines(summary) == _source_lines(by_pixels[1]) != []


def _source_lines(summary: str) -> list[str]:
    """The summary's counts of source images and matches (the evaluation lines name local files)."""
    return [line for line in summary.splitlines() if line.startswith(("source:", "matched"))]
