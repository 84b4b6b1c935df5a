"""The parse stage: an image's captions -> merged subject-predicate-object triplets."""

from __future__ import annotations

from sgpipe import errors
from sgpipe.config import ParseConfig
from sgpipe.records import Sample
from sgpipe.stages.base import Resources, Stage
from sgpipe.text.parser import MAX_CHARS, CaptionParser, merge_triplets, prepare_caption


class ParseStage(Stage):
    """Fills `sample.triplets` from `sample.captions` with one spaCy pass over the batch's captions."""

    name = "parse"
    failure_status = errors.FAILED_PARSE

    def __init__(self, config: ParseConfig | None = None) -> None:
        self.config = config or ParseConfig()
        super().__init__(self.config.batch_size, Resources(cpus=1.0))
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
