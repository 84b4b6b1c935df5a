"""Image files that real datasets contain, good and bad, written to a folder by name."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(
    width: int = 40, height: int = 30, mode: str = "RGB", exif_orientation: int | None = None
) -> bytes:
    color = (0, 0, 0, 0) if mode == "CMYK" else (200, 30, 60)
    image = Image.new(mode, (width, height), color[: len(mode)] if mode != "L" else 128)
    buffer = io.BytesIO()
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(buffer, format="JPEG", exif=exif.tobytes())
    else:
        image.save(buffer, format="JPEG")
    return buffer.getvalue()


def png_bytes(width: int = 40, height: int = 30, mode: str = "RGBA") -> bytes:
    if mode == "I;16":
        array = (np.arange(width * height, dtype=np.uint16).reshape(height, width) * 50).astype(np.uint16)
        image = Image.frombytes("I;16", (width, height), array.tobytes())
    elif mode == "RGBA":
        image = Image.new("RGBA", (width, height), (10, 200, 10, 100))
    else:
        image = Image.new(mode, (width, height), 77)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png_bytes(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny file whose header declares a gigapixel image (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


CASES = {
    # name: (bytes, annotated (width, height))
    "good.jpg": (lambda: jpeg_bytes(40, 30), (40, 30)),
    "zero.jpg": (lambda: b"", (40, 30)),
    "truncated.jpg": (lambda: jpeg_bytes(40, 30)[:200], (40, 30)),
    "text.jpg": (lambda: b"this is not an image\n" * 20, (40, 30)),
    "alpha.png": (lambda: png_bytes(40, 30, "RGBA"), (40, 30)),
    "cmyk.jpg": (lambda: jpeg_bytes(40, 30, "CMYK"), (40, 30)),
    "deep16.png": (lambda: png_bytes(40, 30, "I;16"), (40, 30)),
    "gray.png": (lambda: png_bytes(40, 30, "L"), (40, 30)),
    # stored 40x30, EXIF orientation 6 (rotate 90): the annotation has the upright 30x40
    "rotated.jpg": (lambda: jpeg_bytes(40, 30, exif_orientation=6), (30, 40)),
    "wrongsize.jpg": (lambda: jpeg_bytes(40, 30), (64, 64)),
    "bomb.png": (lambda: bomb_png_bytes(), (100_000, 100_000)),
    "with space ünï 名前.jpg": (lambda: jpeg_bytes(40, 30), (40, 30)),
}


def write_case(folder: Path, name: str) -> tuple[int, int]:
    make, size = CASES[name]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(make())
    return size
