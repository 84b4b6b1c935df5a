"""The parse stage with SceneGraphParser (`parse.backend: sng`), as RLIPv2 parsed its captions.

Each distinct caption text of the batch is parsed once, as written (`sgpipe.text.sng`); an image's
triplets are merged across its captions by their spans and relation text, so that every relation text
RLIPv2 would see stays a triplet of its own, in the order RLIPv2 meets them (captions in order, each
graph's relations in order).
"""

from __future__ import annotations

from typing import Any

from sgpipe import errors
from sgpipe.config import ParseConfig
from sgpipe.records import Sample
from sgpipe.stages.base import Resources, Stage
from sgpipe.text.parser import merge_triplets
from sgpipe.text.sng import graph_triplets, load_sng_parser, surface_key


class SngParseStage(Stage):
    name = "parse"
    failure_status = errors.FAILED_PARSE

    def __init__(self, config: ParseConfig | None = None) -> None:
        self.config = config or ParseConfig()
        super().__init__(self.config.batch_size, Resources(cpus=1.0))
        self.parser: Any = None
        self._model = ""

    def setup(self) -> None:
        self.parser, self._model = load_sng_parser(self.config.spacy_model)

    def teardown(self) -> None:
        self.parser = None

    def describe(self) -> dict:
        described = {"backend": "sng", "parser": "SceneGraphParser"}
        if self._model:
            import spacy

            meta = spacy.util.get_package_version(self._model)
            described.update({"spacy_model": self._model, "spacy_model_version": meta})
        return described

    def process(self, samples: list[Sample]) -> None:
        assert self.parser is not None, "setup() loads SceneGraphParser"
        parsed: dict[str, list] = {}
        for sample in samples:
            per_caption = []
            for caption in sample.captions:
                if caption.text not in parsed:
                    parsed[caption.text] = graph_triplets(self.parser.parse(caption.text))
                per_caption.append((caption.id, parsed[caption.text]))
            sample.triplets = merge_triplets(per_caption, key_of=surface_key)
            sample.count("parse_triplets", len(sample.triplets))
