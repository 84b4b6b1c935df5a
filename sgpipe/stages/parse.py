"""The parse stage: an image's captions -> merged subject-predicate-object triplets."""

from __future__ import annotations

import json
import sys
from collections import deque
from pathlib import Path
from typing import IO, Any, Iterator

from sgpipe import errors
from sgpipe.config import ParseConfig
from sgpipe.records import Sample
from sgpipe.stages.base import Stage
from sgpipe.text.parser import MAX_CHARS, CaptionParser, merge_triplets, prepare_caption


class ParseStage(Stage):
    """Fills `sample.triplets` from `sample.captions` with one spaCy pass over the batch's captions."""

    name = "parse"
    failure_status = errors.FAILED_PARSE

    def __init__(self, config: ParseConfig | None = None) -> None:
        super().__init__()
        self.config = config or ParseConfig()
        self.batch_size = self.config.batch_size
        self.parser = CaptionParser(self.config.spacy_model, batch_size=self.config.batch_size)

    def setup(self) -> None:
        self.parser.nlp  # noqa: B018 - loads the pipeline once per worker

    def describe(self) -> dict:
        return self.parser.describe()

    def process(self, samples: list[Sample]) -> None:
        # Identical caption texts (within an image or across the batch) are parsed once.
        unique: dict[str, int] = {}
        prepared_per_sample = []
        for sample in samples:
            prepared = []
            for caption in sample.captions:
                text, truncated = prepare_caption(caption.text, MAX_CHARS)
                if truncated:
                    sample.count("parse_captions_truncated")
                if text is None:
                    sample.count("parse_captions_skipped")
                else:
                    unique.setdefault(text, len(unique))
                prepared.append((caption.id, text))
            prepared_per_sample.append(prepared)
        parsed = self.parser.parse_prepared(list(unique))
        for sample, prepared in zip(samples, prepared_per_sample, strict=True):
            sample.triplets = merge_triplets(
                (caption_id, parsed[unique[text]] if text is not None else [])
                for caption_id, text in prepared
            )
            sample.count("parse_triplets", len(sample.triplets))


def _read_jsonl(path: Path) -> Iterator[tuple[object, str]]:
    try:
        handle = path.open(encoding="utf-8")
    except OSError as error:
        raise errors.SgpipeError(f"cannot read {path}: {error.strerror}") from None
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
                raise errors.SgpipeError(
                    f'{path}:{number}: expected a JSON object {{"id", "text"}} '
                    f"({type(error).__name__}: {error})"
                ) from None


def parse_command(
    text: str | None,
    input_path: Path | None,
    output_path: Path | None,
    spacy_model: str = "en_core_web_sm",
    parser: Any = None,
) -> None:
    """`sgpipe parse`: one caption to JSON lines of triplets, or a JSONL file of captions to JSONL.

    `parser` (anything with `parse` and `parse_many`) replaces the rule parser."""
    if (text is None) == (input_path is None):
        raise errors.SgpipeError('give either a caption or --input FILE.jsonl (lines {"id", "text"})')
    parser = parser or CaptionParser(spacy_model)
    if text is not None:
        out: IO[str] = sys.stdout if output_path is None else output_path.open("w", encoding="utf-8")
        try:
            for triplet in merge_triplets([(0, parser.parse(text))]):
                out.write(json.dumps(triplet.to_json()) + "\n")
        finally:
            if out is not sys.stdout:
                out.close()
        return
    rows = _read_jsonl(Path(input_path))
    ids: deque[object] = deque()  # ids of rows read ahead of their parse

    def texts() -> Iterator[str]:
        for row_id, row_text in rows:
            ids.append(row_id)
            yield row_text

    tmp = None if output_path is None else output_path.with_name(output_path.name + ".tmp")
    out = sys.stdout if tmp is None else tmp.open("w", encoding="utf-8")
    try:
        for triplets in parser.parse_many(texts()):
            merged = merge_triplets([(0, triplets)])
            out.write(json.dumps({"id": ids.popleft(), "triplets": [t.to_json() for t in merged]}) + "\n")
    except BaseException:
        if tmp is not None:
            out.close()
            tmp.unlink(missing_ok=True)
        raise
    if tmp is not None:
        out.close()
        tmp.replace(output_path)  # a complete file or none
