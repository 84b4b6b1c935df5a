"""The parse stage with a learned parser (`parse.backend: seq2seq`): captions -> generated graphs -> triplets.

Captions go through the same preparation as with the rules (whitespace, 500-character cut, English
only), identical texts are generated once per batch, the graphs are read leniently and their
entities resolved with spaCy (`sgpipe.text.graph_triplets`), so the records look the same to the
tag stage whichever backend wrote them. Per sample: `parse_tuples_malformed` counts generated
fragments that were not a readable tuple, `parse_attributes` the attribute tuples
(`( x , is , y )`), which are not relations and are not written as triplets.
"""

from __future__ import annotations

from typing import Any

from sgpipe import errors
from sgpipe.config import ParseConfig
from sgpipe.models.graph_generator import SceneGraphGenerator
from sgpipe.records import Sample
from sgpipe.stages.base import Stage
from sgpipe.text.factual_format import GeneratedGraph, read_graph
from sgpipe.text.graph_triplets import GraphTriplets
from sgpipe.text.parser import MAX_CHARS, merge_triplets, prepare_caption


class Seq2SeqParseStage(Stage):
    name = "parse"
    failure_status = errors.FAILED_PARSE

    def __init__(self, config: ParseConfig, device: str = "auto") -> None:
        super().__init__()
        self.config = config
        self.device = device
        self.batch_size = config.batch_size  # samples per call; the model cuts their captions in batches
        self.resolver = GraphTriplets(config.spacy_model, batch_size=config.batch_size)
        self.generator: SceneGraphGenerator | None = None

    def setup(self) -> None:
        self.generator = SceneGraphGenerator.from_config(self.config, device=self.device).load()
        self.resolver.nlp  # noqa: B018 - loads the pipeline once per worker

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"backend": "seq2seq"}
        if self.generator is not None:
            described.update(self.generator.describe())
            described.update(self.resolver.describe())
        else:
            described["model"] = self.config.model
        return described

    def process(self, samples: list[Sample]) -> None:
        assert self.generator is not None, "setup() loads the model"
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
        texts = list(unique)
        graphs = [read_graph(g) for g in self.generator.generate(texts)]
        parsed = self.resolver.triplets(texts, graphs)
        for sample, prepared in zip(samples, prepared_per_sample, strict=True):
            for _, text in prepared:
                graph = graphs[unique[text]] if text is not None else GeneratedGraph()
                sample.count("parse_tuples_malformed", graph.malformed)
                sample.count("parse_attributes", len(graph.attributes))
            sample.triplets = merge_triplets(
                (caption_id, parsed[unique[text]] if text is not None else [])
                for caption_id, text in prepared
            )
            sample.count("parse_triplets", len(sample.triplets))
