"""Write `tests/source/img2dataset_fixture/` with img2dataset's own code: the tars a user's img2dataset run
leaves, for the webdataset source's tests to read (what the tests' own tar writer cannot prove).

    python -m venv /tmp/i2d-env && /tmp/i2d-env/bin/pip install img2dataset==1.47.0
    python tools/img2dataset_reference/make_fixture.py --img2dataset /tmp/i2d-env/bin/img2dataset

Five small images (a JPEG, a PNG, a WebP, a grey JPEG, a JPEG whose alt text is not ASCII) are served
from a local HTTP server with a sixth URL that answers 404, and img2dataset downloads them as it
downloads LAION: `--output_format webdataset`, alt texts from a `caption` column, 3 samples per shard,
images resized to 48 px, re-encoded as JPEG. Its output folder (tars, parquets, stats) is copied as it is,
with `urls.csv` beside it and `expected.json`: what the input was, per URL (the test checks that each
downloaded image arrives with its own alt text and size, and the 404 does not arrive at all).
"""

from __future__ import annotations

import argparse
import csv
import functools
import http.server
import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parents[2] / "tests" / "source" / "img2dataset_fixture"
IMAGES = (  # name, mode, size, fill, alt text
    ("red.jpg", "RGB", (64, 48), (200, 30, 30), "A red square on a wall."),
    ("green.png", "RGB", (40, 60), (30, 160, 60), "A man riding a green bicycle."),
    ("blue.webp", "RGB", (50, 50), (30, 60, 200), "A dog sitting on a blue sofa."),
    ("grey.jpg", "L", (60, 30), 128, "A cat lying next to a grey box."),
    ("cafe.jpg", "RGB", (48, 48), (120, 90, 40), "Un café sur une table en bois."),
)
MISSING = ("gone.jpg", "A photo that is no longer there.")


def write_images(folder: Path) -> None:
    for name, mode, size, fill, _ in IMAGES:
        Image.new(mode, size, fill).save(folder / name)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--img2dataset", required=True, help="the img2dataset command of an environment that has it"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "www").mkdir()
        write_images(work / "www")
        server, base = serve(work / "www")
        rows = [(f"{base}/{name}", text) for name, *_, text in IMAGES] + [
            (f"{base}/{MISSING[0]}", MISSING[1])
        ]
        with open(work / "urls.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["url", "caption"])
            writer.writerows(rows)
        command = [
            args.img2dataset, "--url_list", str(work / "urls.csv"), "--input_format", "csv",
            "--url_col", "url", "--caption_col", "caption", "--output_format", "webdataset",
            "--output_folder", str(work / "shards"), "--processes_count", "1", "--thread_count", "1",
            "--number_sample_per_shard", "3", "--image_size", "48", "--resize_mode", "keep_ratio",
            "--encode_format", "jpg", "--enable_wandb", "False",
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True)
        server.shutdown()
        shutil.rmtree(OUT, ignore_errors=True)
        shutil.copytree(work / "shards", OUT)
        version = subprocess.run([args.img2dataset.replace("img2dataset", "pip"), "show", "img2dataset"],
                                 capture_output=True, text=True).stdout  # fmt: skip
        expected = {
            "img2dataset": next(
                (ln.split(": ")[1] for ln in version.splitlines() if ln.startswith("Version")), ""
            ),
            "command": " ".join(["img2dataset", *command[1:]]).replace(str(work), "WORK"),
            "downloaded": {name: {"alt_text": text, "size": list(size)} for name, _, size, _, text in IMAGES},
            "missing": {MISSING[0]: MISSING[1]},
        }
        (OUT / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
