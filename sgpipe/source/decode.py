"""Read and decode images in threads; every failure becomes the sample's status, never an exception.

Statuses: `failed_missing` (no file under any resolution rule), `failed_decode` (not a readable
image, truncated), `failed_too_large` (declared pixels over `source.max_pixels`, checked before any
pixel is decoded), `failed_size_mismatch` (the decoded size matches the annotation neither as
stored nor after EXIF rotation).
"""

from __future__ import annotations

import io
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sgpipe import errors
from sgpipe.records import Sample
from sgpipe.stages.base import Resources, Stage
from sgpipe.storage import RemotePath, location

FORMAT_EXTENSIONS = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tif",
    "MPO": "jpg",
}

# The pixel guard is ours (max_pixels): PIL's own bomb check would raise before we can say why.
Image.MAX_IMAGE_PIXELS = None


def _plain(error: Exception) -> str:
    """The message without object addresses, so status rows are reproducible."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", str(error))


def candidate_names(file_name: str) -> tuple[list[tuple[str, tuple[str, ...]]], str]:
    """The (rule, path parts) to try in order, or none and why: a name that would leave the images
    folder (absolute, `..`) has no candidate."""
    if not file_name:
        return [], "empty file_name"
    parts = PurePosixPath(file_name.replace("\\", "/")).parts
    if PurePosixPath(file_name).is_absolute() or ".." in parts:
        return [], f"file_name {file_name!r} leaves the images folder"
    candidates, seen = [], set()
    for rule, candidate_parts in (("direct", parts), ("last_two", parts[-2:]), ("basename", parts[-1:])):
        if candidate_parts and candidate_parts not in seen:
            seen.add(candidate_parts)
            candidates.append((rule, candidate_parts))
    return candidates, ""


def resolve_image_path(root: Path, file_name: str) -> tuple[Path | None, str]:
    """`root/file_name`, else its last two parts (Objects365 `patchN/x.jpg`), else the bare name.

    Returns (path or None, the rule that resolved it or why nothing did). A name that would leave
    the images folder (absolute, `..`) never resolves.
    """
    candidates, why_none = candidate_names(file_name)
    if not candidates:
        return None, why_none
    for rule, candidate_parts in candidates:
        path = root.joinpath(*candidate_parts)
        if path.is_file():
            return path, rule
    return (
        None,
        f"no file {file_name!r} under {str(root)!r} (tried the name, its last two parts, its base name)",
    )


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB for the models: 16-bit scaled to 8, alpha composited on white, CMYK/palette converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.uint32 if image.mode == "I" else np.uint16)
        scale = 257.0 if array.max(initial=0) > 255 else 1.0
        image = Image.fromarray(np.clip(array / scale, 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def read_remote_image(root: RemotePath, file_name: str) -> tuple[bytes | None, str]:
    """The bytes under the first candidate name that exists, fetched directly: one GET per image
    when the name is right, and no listing of the images folder (Objects365 has 1.7M objects).

    Returns (bytes or None, the rule that resolved it or why nothing did)."""
    candidates, why_none = candidate_names(file_name)
    for rule, candidate_parts in candidates:
        path = root / "/".join(candidate_parts)
        try:
            return path.read_bytes(), rule
        except FileNotFoundError:
            continue
        except OSError as error:  # denied, unreachable after the client's retries: said without addresses
            return None, f"cannot read {path.name}: {type(error).__name__}"
    if not candidates:
        return None, why_none
    return (
        None,
        f"no object {file_name!r} under {str(root)!r} (tried the name, its last two parts, its base name)",
    )


def read_image(sample: Sample, root: Path | RemotePath | None) -> bytes | None:
    """The sample's image bytes, or None with the sample failed as missing. A source that carries
    its images (a tar) has put them in `image_bytes` already; `root` is None for it."""
    if sample.image_bytes is not None:
        return sample.image_bytes
    if root is None:
        sample.fail(errors.FAILED_MISSING, "no image in the source item")
        return None
    if isinstance(root, RemotePath):
        data, rule = read_remote_image(root, sample.file_name)
        if data is None:
            sample.fail(errors.FAILED_MISSING, rule)
            return None
        sample.count(f"resolved_{rule}")
        return data
    path, rule = resolve_image_path(root, sample.file_name)
    if path is None:
        sample.fail(errors.FAILED_MISSING, rule)
        return None
    sample.count(f"resolved_{rule}")
    try:
        return path.read_bytes()
    except OSError as error:
        sample.fail(errors.FAILED_MISSING, f"cannot read {path.name}: {error.strerror}")
        return None


def decode_sample(
    sample: Sample, root: Path | RemotePath | None, max_pixels: int, keep_bytes: bool
) -> None:
    data = read_image(sample, root)
    if data is None:
        return
    if not data:
        sample.fail(errors.FAILED_DECODE, "empty file (0 bytes)")
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                sample.fail(
                    errors.FAILED_TOO_LARGE, f"{width}x{height} = {width * height} pixels > {max_pixels}"
                )
                return
            image.load()
    except UnidentifiedImageError:
        sample.fail(errors.FAILED_DECODE, "not a readable image: unknown format")
        return
    except Exception as error:  # noqa: BLE001 - PIL raises many types for bad files
        sample.fail(
            errors.FAILED_DECODE, f"not a readable image: {type(error).__name__}: {_plain(error)}"[:500]
        )
        return
    extension = FORMAT_EXTENSIONS.get(image.format or "")
    if extension is None:
        sample.fail(errors.FAILED_DECODE, f"unsupported image format {image.format!r}")
        return
    expected = (sample.width, sample.height)
    if sample.width <= 0 or sample.height <= 0:
        sample.width, sample.height = image.size
    elif image.size != expected:
        rotated = ImageOps.exif_transpose(image)
        if rotated.size != expected:
            sample.fail(
                errors.FAILED_SIZE_MISMATCH,
                f"decoded {width}x{height} (after EXIF rotation {rotated.size[0]}x{rotated.size[1]}) "
                f"vs annotation {sample.width}x{sample.height}",
            )
            return
        image = rotated
        sample.count("exif_rotated")
    try:
        sample.image = to_rgb(image)
    except Exception as error:  # noqa: BLE001
        sample.fail(
            errors.FAILED_DECODE, f"cannot convert to RGB: {type(error).__name__}: {_plain(error)}"[:500]
        )
        return
    sample.image_ext = extension
    sample.image_bytes = data if keep_bytes else None


DECODE_BATCH_SIZE = 64  # images handed to the thread pool at once


class DecodeStage(Stage):
    """Reads and decodes a batch of images in a thread pool (I/O and libjpeg release the GIL)."""

    name = "decode"
    failure_status = errors.FAILED_DECODE

    def __init__(
        self,
        images_root: str | Path | RemotePath | None,
        max_pixels: int,
        threads: int = 4,
        keep_bytes: bool = True,
        batch_size: int = DECODE_BATCH_SIZE,
    ):
        # one CPU: the threads mostly wait on reads, and decoding releases the GIL
        super().__init__(batch_size, Resources(cpus=1.0))
        self.root = location(images_root) if images_root is not None else None  # None: tars carry images
        self.max_pixels = max_pixels
        self.threads = max(1, threads)
        self.keep_bytes = keep_bytes
        self._pool: ThreadPoolExecutor | None = None

    def setup(self) -> None:
        if self.threads > 1:  # one thread decodes in the caller's: no hand-off per image
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="decode")

    def teardown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def process(self, samples: list[Sample]) -> None:
        decode = lambda s: decode_sample(s, self.root, self.max_pixels, self.keep_bytes)  # noqa: E731
        if self.threads == 1:
            for sample in samples:
                decode(sample)
            return
        assert self._pool is not None, "setup() starts the thread pool"
        list(self._pool.map(decode, samples))
