"""The evaluation side: image ids from COCO-format JSON files, hashes of image files.

An `--against` path is one of:
- a `.json` file in COCO format (instances or captions: an `images` list with `id`s). Its ids are
  taken to be in the source's id space — COCO 2014 and 2017 share image ids, and V-COCO, RefCOCO and
  COCO-format HOI annotations use COCO's — so pass such a file only when that holds (for a set with
  its own ids, HICO-DET say, pass its image folder). It is streamed with ijson (any size).
- a folder: every file with an image extension under it, recursively, is hashed;
- any other file: one image, hashed.
Files that cannot be read or decoded are skipped and counted, never fatal.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import ijson
import numpy as np

from sgpipe.errors import SgpipeError, SourceError
from sgpipe.leakage.hashing import bounded_map, hash_file
from sgpipe.leakage.match import to_words
from sgpipe.records import IMAGE_EXTENSIONS
from sgpipe.source.coco import image_fields

EXAMPLES_KEPT = 5  # unreadable files named in the summary


@dataclass
class EvaluationSet:
    ids: dict[int, str] = field(default_factory=dict)  # image id -> the JSON file naming it
    md5s: dict[str, str] = field(default_factory=dict)  # md5 of the bytes -> image file
    phashes: list[int] = field(default_factory=list)
    phash_files: list[str] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)
    unreadable: list[str] = field(default_factory=list)  # the first few, as examples

    def phash_words(self) -> np.ndarray:
        return to_words(self.phashes)


def check_against_paths(paths: list[str]) -> None:
    missing = [p for p in paths if not Path(p).exists()]
    if not paths:
        raise SgpipeError("--against: give at least one evaluation JSON, image folder or image file")
    if missing:
        raise SgpipeError("--against: no such file or folder: " + ", ".join(repr(p) for p in missing))


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS


def coco_image_ids(path: Path) -> list[int]:
    """The ids of a COCO-format JSON's `images` entries (entries without a usable id are skipped)."""
    ids = []
    try:
        with open(path, "rb") as handle:
            for image in ijson.items(handle, "images.item", use_float=True):
                fields = image_fields(image)
                if fields is not None:
                    ids.append(fields[0])
    except OSError as error:
        raise SourceError(f"--against {str(path)!r}: cannot read: {error.strerror}") from None
    except ijson.JSONError as error:
        raise SourceError(f"--against {str(path)!r} is not valid JSON: {error}") from None
    if not ids:
        raise SourceError(
            f"--against {str(path)!r}: no 'images' entries with ids; only COCO-format JSON (instances or "
            "captions) is matched by id. Pass the evaluation set's image folder to match by content"
        )
    return ids


def _image_files(paths: list[str], counters: Counter) -> list[Path]:
    files: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            for candidate in sorted(path.rglob("*")):
                if candidate.is_file():
                    if _is_image_name(candidate):
                        files.append(candidate)
                    else:
                        counters["against_other_files"] += 1
        elif path.suffix.lower() != ".json":
            files.append(path)
    return files


def load_evaluation(paths: list[str], threads: int) -> EvaluationSet:
    """Ids of the JSON files and hashes of every image file the paths name."""
    check_against_paths(paths)
    evaluation = EvaluationSet()
    for text in paths:
        path = Path(text)
        if path.is_file() and path.suffix.lower() == ".json":
            ids = coco_image_ids(path)
            evaluation.counters["against_ids"] += len(ids)
            for image_id in ids:
                evaluation.ids.setdefault(image_id, str(path))
    files = _image_files(paths, evaluation.counters)
    for path, hashes in zip(files, bounded_map(hash_file, files, threads)):
        if hashes.phash is None:
            evaluation.counters["against_unreadable"] += 1
            if len(evaluation.unreadable) < EXAMPLES_KEPT:
                evaluation.unreadable.append(f"{path} ({hashes.error})")
            continue
        evaluation.counters["against_images"] += 1
        evaluation.md5s.setdefault(hashes.md5, str(path))
        evaluation.phashes.append(hashes.phash)
        evaluation.phash_files.append(str(path))
    return evaluation
