from PIL import Image

from sgpipe.tools.inspect_shards import inspect_shards
from sgpipe.tools.render_record import DROPPED_COLOUR, KEPT_COLOUR, _offset, render_record
from tests.helpers.tiny_shards import make_output, output_sample


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


def test_inspect_counts_and_prints_records(tmp_path):
    make_output(tmp_path, n_images=5, per_shard=2)
    text = inspect_shards(str(tmp_path), limit=2)
    # 5 ok images: 4 with 3 objects and 2 relations (1 kept), 1 without relations; 3 shards (+1 failed row)
    assert text.splitlines()[0] == (
        "3 shards, 5 samples (5 with images), 15 objects, 8 triplets, 8 relations, 4 kept"
    )
    assert "t-000000000001  64x48  3 objects  2 triplets  2 relations" in text
    assert "triplet:   man -ride-> bicycle  (support 2)" in text
    assert "relation:  person#11 -ride-> bicycle#13  confidence 0.80 kept" in text
    assert "confidence 0.10 dropped" in text
    assert "t-000000000003" not in text  # limit 2


def test_inspect_brace_pattern_and_single_file(tmp_path):
    make_output(tmp_path, n_images=4, per_shard=2, failed=0)
    assert inspect_shards(str(tmp_path / "{00000..00001}.tar"), limit=0).startswith("2 shards, 4 samples")
    assert inspect_shards(str(tmp_path / "00001.tar"), limit=0).startswith("1 shards, 2 samples")


def test_render_writes_pngs_for_image_and_label_only_shards(tmp_path):
    make_output(tmp_path / "img", n_images=2, per_shard=2, failed=0)
    make_output(tmp_path / "lab", n_images=2, per_shard=2, failed=0, images=False)
    for name in ("img", "lab"):
        text = inspect_shards(str(tmp_path / name), limit=2, render_dir=tmp_path / f"png_{name}")
        pngs = sorted((tmp_path / f"png_{name}").glob("*.png"))
        assert [p.name for p in pngs] == ["t-000000000001.png", "t-000000000002.png"]
        assert "rendered 2 PNGs" in text
        with Image.open(pngs[0]) as image:
            assert image.format == "PNG" and image.width >= 512 and image.height == image.width * 48 // 64
    with Image.open(tmp_path / "png_lab" / "t-000000000001.png") as blank:
        assert blank.getpixel((2, blank.height - 3)) == (255, 255, 255)  # blank canvas outside boxes


def test_kept_and_dropped_relations_are_drawn_differently():
    sample = output_sample(1)
    record = sample.to_record({})
    image = render_record(record, None)
    colours = {c for _, c in image.getcolors(maxcolors=1 << 16)}
    assert _rgb(KEPT_COLOUR) in colours and _rgb(DROPPED_COLOUR) in colours
    # without relations, neither arrow colour appears
    record["relations"] = []
    bare = {c for _, c in render_record(record, None).getcolors(maxcolors=1 << 16)}
    assert _rgb(KEPT_COLOUR) not in bare and _rgb(DROPPED_COLOUR) not in bare
    # the dropped arrow is dashed: along its path some pixels keep the background
    only_dropped = dict(record, relations=[sample.relations[1].to_json()])
    drawn = render_record(only_dropped, None)
    objects = {o["id"]: o["bbox"] for o in record["objects"]}
    zoom = drawn.width / record["width"]
    (x0, y0, w0, h0), (x1, y1, w1, h1) = objects[13], objects[12]
    line = max(2, drawn.width // 300)
    start, end = _offset(
        ((x0 + w0 / 2) * zoom, (y0 + h0 / 2) * zoom), ((x1 + w1 / 2) * zoom, (y1 + h1 / 2) * zoom), 2 * line
    )
    samples = [
        drawn.getpixel((round(start[0] + (end[0] - start[0]) * t), round(start[1] + (end[1] - start[1]) * t)))
        for t in [i / 100 for i in range(5, 35)]
    ]
    assert _rgb(DROPPED_COLOUR) in samples and any(p != _rgb(DROPPED_COLOUR) for p in samples)
