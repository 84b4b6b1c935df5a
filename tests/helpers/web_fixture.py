"""img2dataset-style tars and an image folder, written in the test with webdataset's own TarWriter.

img2dataset writes per image `KEY.jpg`, `KEY.txt` (the alt text) and `KEY.json` (url, key, status,
width, height, ...), keys of 9 digits (5 of the shard, 4 of the image), 10,000 images per tar by default.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from tests.helpers.images import jpeg_bytes, pattern_image

ALT_TEXTS = [
    "a man riding a horse next to a dog",
    "a dog sitting next to a person",
    "a person standing behind a bicycle",
    "a cat on a table",
]
CORRUPT_KEY = "000010001"  # its jpg is not an image: failed_decode
MISSING_KEY = "000010002"  # only its txt and json: failed_missing


def item_key(shard: int, index: int) -> str:
    return f"{shard:05d}{index:04d}"


def item_members(key: str, seed: int, width: int = 48, height: int = 40, fmt: str = "jpg") -> dict:
    if fmt == "jpg":
        image = jpeg_bytes(width, height, seed)
    else:
        buffer = io.BytesIO()
        pattern_image(width, height, seed).save(buffer, format=fmt.upper())
        image = buffer.getvalue()
    metadata = {"url": f"https://example.com/{key}.{fmt}", "key": key, "status": "success",
                "width": width, "height": height, "caption": ALT_TEXTS[seed % len(ALT_TEXTS)]}
    return {"__key__": key, fmt: image, "txt": ALT_TEXTS[seed % len(ALT_TEXTS)], "json": json.dumps(metadata)}


def write_tar(path: Path, samples: list[dict]) -> Path:
    import webdataset as wds

    path.parent.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(path)) as writer:
        for sample in samples:
            writer.write(sample)
    return path


def make_img2dataset(root: Path, n_tars: int = 2, per_tar: int = 3, broken: bool = True) -> list[Path]:
    """`root/00000.tar`, `root/00001.tar`, ... with `per_tar` items each; with `broken`, tar 1's item 1
    has a corrupt jpg and its item 2 no image at all."""
    tars = []
    for shard in range(n_tars):
        samples = []
        for index in range(per_tar):
            key = item_key(shard, index)
            sample = item_members(key, seed=shard * per_tar + index + 1, fmt="png" if index == 2 else "jpg")
            if broken and key == CORRUPT_KEY:
                sample["jpg"] = b"not a jpeg"
            if broken and key == MISSING_KEY:
                sample = {k: v for k, v in sample.items() if k in ("__key__", "txt", "json")}
            samples.append(sample)
        tars.append(write_tar(root / f"{shard:05d}.tar", samples))
    return tars


def make_image_folder(root: Path) -> Path:
    """`root/b/2.jpg` + `2.txt`, `root/a.png` + `a.txt`, `root/c.jpg` (no alt text), `root/d.txt` (no
    image), `root/b/notes.md` (neither), `root/.hidden/x.jpg` and `root/.x.jpg` (hidden)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "b").mkdir()
    (root / "b" / "2.jpg").write_bytes(jpeg_bytes(40, 32, 1))
    (root / "b" / "2.txt").write_text(ALT_TEXTS[0])
    pattern_image(36, 30, 2).save(root / "a.png")
    (root / "a.txt").write_text(ALT_TEXTS[1])
    (root / "c.jpg").write_bytes(jpeg_bytes(30, 30, 3))
    (root / "d.txt").write_text(ALT_TEXTS[2])
    (root / "b" / "notes.md").write_text("not an image")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.jpg").write_bytes(jpeg_bytes(20, 20, 4))
    (root / ".x.jpg").write_bytes(jpeg_bytes(20, 20, 5))
    return root


def web_run_config(shards: list[str] | str, out: Path, **overrides: object):
    """A webdataset run: alt texts as captions, spaCy, no embedder; 2 workers; `a__b=v` overrides."""
    from sgpipe.config import build_config

    raw = {
        "source": {"kind": "webdataset", "name": "web", "shards": shards},
        "output": {"dir": str(out)},
        # the fixture's tar 1 holds a corrupt image and a missing one: 2 of 9 fail
        "run": {"workers": 2, "decode_threads": 2, "max_error_rate": 0.5},
        "tag": {"embedding_model": "none"},
    }
    return build_config(raw, [f"{k.replace('__', '.', 1)}={v}" for k, v in overrides.items()])
