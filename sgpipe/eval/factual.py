"""Triplet precision/recall/F1 against FACTUAL scene graphs (zhuang-li/FactualSceneGraph CSVs).

Only relation triplets count: FACTUAL's attribute triples `( x , is , attr )` are dropped. An entity
matches on the lemma of its last word ("refrigerator door" ~ "door"), a predicate on the lemmas of
its words, with FACTUAL's own conventions ("lay on" for lying and laying). The same normaliser is
applied to gold and to every parser's output, so parsers are compared under one scorer.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from sgpipe.text.lemmas import RuleLemmas
from sgpipe.text.word_classes import PREDICATE_LEMMAS

Triple = tuple[str, str, str]

_GROUP = re.compile(r"\(([^()]*)\)")
_PREPOSITIONS = frozenset(
    "about above across after against along alongside amid among around at atop before behind below beneath "
    "beside besides between beyond by down during for from in inside into near next of off on onto opposite "
    "out outside over past per round through throughout to toward towards under underneath up upon via with "
    "within without the a an".split()
)


@dataclass(frozen=True)
class FactualExample:
    caption: str
    triplets: tuple[Triple, ...]


@dataclass(frozen=True)
class Score:
    true_positives: int
    predicted: int
    gold: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


def parse_scene_graph(text: str) -> list[Triple]:
    """`"( man , ride , horse ) , ( horse , is , brown )"` -> relation triples, attributes dropped."""
    out = []
    for group in _GROUP.findall(text):
        parts = [p.strip().lower() for p in group.split(" , ")]
        if len(parts) == 3 and all(parts) and parts[1] != "is":
            out.append((parts[0], parts[1], parts[2]))
    return out


def read_factual(path: str | Path) -> list[FactualExample]:
    with open(path, newline="", encoding="utf-8") as f:
        return [
            FactualExample(row["caption"], tuple(parse_scene_graph(row["scene_graph"])))
            for row in csv.DictReader(f)
        ]


class Normalizer:
    """Context-free lemmas for gold and predicted phrases alike."""

    def __init__(self, nlp: Any):
        lemmas = RuleLemmas.from_nlp(nlp)
        if lemmas is None:
            raise ValueError("the spaCy pipeline has no rule lemmatizer tables to normalise with")
        self.lemma = lemmas.lemma

    def entity(self, phrase: str) -> str:
        words = phrase.lower().split()
        return self.lemma(words[-1], "noun") if words else ""

    def predicate(self, phrase: str) -> str:
        words = [w if w in _PREPOSITIONS else self.lemma(w, "verb") for w in phrase.lower().split()]
        words = [PREDICATE_LEMMAS.get(w, w) for w in words if w not in ("be", "is", "are")]
        return " ".join(words)

    def triple(self, t: Triple) -> Triple:
        return (self.entity(t[0]), self.predicate(t[1]), self.entity(t[2]))


def score(
    examples: Sequence[FactualExample], predictions: Sequence[Iterable[Triple]], normalizer: Normalizer
) -> Score:
    """Micro-averaged counts; each caption's triplets compared as sets after normalisation."""
    if len(examples) != len(predictions):
        raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
    tp = n_pred = n_gold = 0
    for example, predicted in zip(examples, predictions, strict=True):
        gold = {normalizer.triple(t) for t in example.triplets}
        pred = {normalizer.triple(t) for t in predicted}
        tp += len(gold & pred)
        n_pred += len(pred)
        n_gold += len(gold)
    return Score(tp, n_pred, n_gold)


def sgpipe_predictor(parser: Any) -> Callable[[Sequence[str]], list[list[Triple]]]:
    """Captions -> triples with sgpipe's `CaptionParser`."""

    def predict(captions: Sequence[str]) -> list[list[Triple]]:
        return [[(t.subject, t.predicate, t.object) for t in ts] for ts in parser.parse_many(captions)]

    return predict


def scenegraphparser_predictor(parser: Any) -> Callable[[Sequence[str]], list[list[Triple]]]:
    """Captions -> triples with SceneGraphParser (`sng_parser.Parser`), the parser RLIPv2 used."""

    def predict(captions: Sequence[str]) -> list[list[Triple]]:
        out = []
        for caption in captions:
            graph = parser.parse(caption)
            entities = graph["entities"]
            out.append(
                [
                    (entities[r["subject"]]["lemma_head"], r["relation"], entities[r["object"]]["lemma_head"])
                    for r in graph["relations"]
                ]
            )
        return out

    return predict
