"""`sgpipe parse`: captions -> triplets as JSON lines, outside the pipeline (one caption, or a JSONL file)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections import deque
from pathlib import Path
from typing import IO, Any, Iterator

from sgpipe.errors import SgpipeError
from sgpipe.output.atomic import atomic_file
from sgpipe.text.parser import CaptionParser, merge_triplets


def _read_jsonl(path: Path) -> Iterator[tuple[object, str]]:
    try:
        handle = path.open(encoding="utf-8")
    except OSError as error:
        raise SgpipeError(f"cannot read {path}: {error.strerror}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = row["text"]
                if not isinstance(text, str):
                    raise TypeError("text is not a string")
                yield row.get("id"), text
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise SgpipeError(
                    f'{path}:{number}: expected a JSON object {{"id", "text"}} '
                    f"({type(error).__name__}: {error})"
                ) from None


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    """stdout, or `path` written atomically: a complete file or none."""
    if path is None:
        yield sys.stdout
        return
    with atomic_file(path, "w") as handle:
        yield handle


def parse_captions(
    text: str | None,
    input_path: Path | None,
    output_path: Path | None,
    spacy_model: str = "en_core_web_sm",
    parser: Any = None,
) -> None:
    """One caption to JSON lines of triplets, or a JSONL file of captions to JSONL. `parser` (anything
    with `parse` and `parse_many`, e.g. the learned parser) replaces the rule parser."""
    if (text is None) == (input_path is None):
        raise SgpipeError('give either a caption or --input FILE.jsonl (lines {"id", "text"})')
    parser = parser or CaptionParser(spacy_model)
    with _output(output_path) as out:
        if text is not None:
            for triplet in merge_triplets([(0, parser.parse(text))]):
                out.write(json.dumps(triplet.to_json()) + "\n")
            return
        rows = _read_jsonl(Path(input_path))
        ids: deque[object] = deque()  # ids of rows read ahead of their parse

        def texts() -> Iterator[str]:
            for row_id, row_text in rows:
                ids.append(row_id)
                yield row_text

        for triplets in parser.parse_many(texts()):
            merged = merge_triplets([(0, triplets)])
            out.write(json.dumps({"id": ids.popleft(), "triplets": [t.to_json() for t in merged]}) + "\n")
