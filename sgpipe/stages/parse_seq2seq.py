"""The parse stage with a learned parser (`parse.backend: seq2seq`): captions -> generated graphs -> triplets.

Captions go through the same preparation as with the rules (whitespace, 500-character cut, English
only), identical texts are generated once per batch, the graphs are read leniently and their
entities resolved with spaCy (`sgpipe.text.graph_triplets`), so the records look the same to the
tag stage whichever backend wrote them. Per sample: `parse_tuples_malformed` counts generated
fragments that were not a readable tuple, `parse_attributes` the attribute tuples
(`( x , is , y )`), which are not relations and are not written as triplets.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Iterator, Sequence

from sgpipe import errors
from sgpipe.config import ParseConfig
from sgpipe.models.graph_generator import SceneGraphGenerator
from sgpipe.records import Sample, Triplet
from sgpipe.stages.base import Resources, Stage
from sgpipe.text.factual_format import GeneratedGraph, read_graph
from sgpipe.text.graph_triplets import GraphTriplets
from sgpipe.text.parser import MAX_CHARS, merge_triplets, prepare_caption


class Seq2SeqCaptionParser:
    """Captions -> triplets with a text2text model and spaCy; the model is loaded by `load()`.

    The stage, `sgpipe parse --model` and `benchmarks/bench_parse.py` share it.
    """

    def __init__(self, config: ParseConfig, device: str = "auto") -> None:
        self.config = config
        self.device = device
        self.resolver = GraphTriplets(config.spacy_model, batch_size=config.batch_size)
        self.generator: SceneGraphGenerator | None = None
        self._loaded_description: dict[str, Any] | None = None

    def load(self) -> "Seq2SeqCaptionParser":
        self.generator = SceneGraphGenerator.from_config(self.config, device=self.device).load()
        self.resolver.nlp  # noqa: B018 - loads the spaCy pipeline
        return self

    def unload(self) -> None:
        """Free the model; `describe()` keeps answering with what was loaded."""
        if self.generator is not None:
            self._loaded_description = self.describe()
        self.generator = None

    def describe(self) -> dict[str, Any]:
        if self.generator is None and self._loaded_description is not None:
            return self._loaded_description
        described: dict[str, Any] = {"backend": "seq2seq"}
        if self.generator is None:
            return {**described, "model": self.config.model}
        return {**described, **self.generator.describe(), **self.resolver.describe()}

    def parse_prepared(self, texts: Sequence[str]) -> tuple[list[list[Triplet]], list[GeneratedGraph]]:
        """Triplets and generated graphs of texts already passed through `prepare_caption`."""
        if self.generator is None:
            self.load()
        graphs = [read_graph(g) for g in self.generator.generate(texts)]
        return self.resolver.triplets(texts, graphs), graphs

    def parse(self, text: str) -> list[Triplet]:
        return next(self.parse_many([text]))

    def parse_many(self, texts: Iterable[str]) -> Iterator[list[Triplet]]:
        """Triplets per text, in order (texts that are not English give [])."""
        iterator = iter(texts)
        while chunk := list(itertools.islice(iterator, self.config.batch_size)):
            prepared = [prepare_caption(t, MAX_CHARS)[0] for t in chunk]
            parsed = iter(self.parse_prepared([t for t in prepared if t is not None])[0])
            for t in prepared:
                yield next(parsed) if t is not None else []


class Seq2SeqParseStage(Stage):
    name = "parse"
    failure_status = errors.FAILED_PARSE

    def __init__(self, config: ParseConfig, device: str = "auto", gpus: float = 0.0) -> None:
        # batch_size: samples per call; the model cuts their captions in batches of its own
        super().__init__(config.batch_size, Resources(cpus=1.0, gpus=gpus))
        self.config = config
        self.parser = Seq2SeqCaptionParser(config, device)

    def setup(self) -> None:
        self.parser.load()

    def teardown(self) -> None:
        self.parser.unload()

    def describe(self) -> dict[str, Any]:
        return self.parser.describe()

    def process(self, samples: list[Sample]) -> None:
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
        parsed, graphs = self.parser.parse_prepared(list(unique))
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
