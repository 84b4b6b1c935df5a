"""Tag: ground each triplet on the image's boxes as ranked candidate (subject box, object box) pairs.

Entities (the triplet's subject and object head lemmas) are mapped to box categories by the
lexicon (whole words, curated synonyms and hyponyms), then by sentence-embedding similarity for
words the lexicon does not know. Candidates are the ordered pairs of distinct eligible boxes
(no crowd boxes unless `include_crowd`, none smaller than `min_box_area`) whose categories match,
at most `max_pairs_per_triplet` per triplet, best geometric prior (`tag_score`) first.

Boxes the detect stage found are grounded by the phrase that found them first: an entity for which
its own phrase found boxes takes those, and only those; an entity whose phrase found none goes
through the lexicon as above, over the annotated boxes and the boxes the detector's vocabulary found.
"""

from __future__ import annotations

import numpy as np

from sgpipe import errors
from sgpipe.config import TagConfig
from sgpipe.records import DETECTOR, Box, Relation, Sample
from sgpipe.stages.base import Resources, Stage
from sgpipe.vocab.lexicon import Lexicon, normalise
from sgpipe.vocab.matcher import EMBEDDING, EntityMatcher
from sgpipe.vocab.tag_score import tag_scores

NONE = "none"
TAG_BATCH_SIZE = 256  # tagging is per sample: the size only bounds what one failing batch re-runs


class TagStage(Stage):
    name = "tag"
    failure_status = errors.FAILED_TAG

    def __init__(self, config: TagConfig, categories: list[str], batch_size: int = TAG_BATCH_SIZE):
        super().__init__(batch_size, Resources(cpus=1.0))
        self.config = config
        self.categories = list(categories)
        self.matcher: EntityMatcher | None = None
        self._vocabulary = config.vocabulary  # the lexicon's resolved name once set up

    def setup(self) -> None:
        embedder = None
        if self.config.embedding_model != NONE:
            from sgpipe.models.text_embedder import TextEmbedder

            embedder = TextEmbedder(self.config.embedding_model)
        lexicon = Lexicon(self.categories, self.config.vocabulary)
        self.matcher = EntityMatcher(lexicon, embedder, self.config.embedding_threshold)
        self._vocabulary = lexicon.vocabulary

    def teardown(self) -> None:
        self.matcher = None

    def describe(self) -> dict:
        return {
            "vocabulary": self._vocabulary,
            "embedding_model": self.config.embedding_model,
            "embedding_threshold": self.config.embedding_threshold,
            "max_pairs_per_triplet": self.config.max_pairs_per_triplet,
            "min_box_area": self.config.min_box_area,
            "include_crowd": self.config.include_crowd,
        }

    def process(self, samples: list[Sample]) -> None:
        assert self.matcher is not None, "setup() builds the entity matcher"
        for sample in samples:
            self._tag(sample)

    def _eligible(self, box: Box) -> bool:
        if box.iscrowd and not self.config.include_crowd:
            return False
        return box.bbox[2] * box.bbox[3] >= self.config.min_box_area

    def _boxes_for(self, sample: Sample, lemma: str, eligible: list[Box]) -> list[int]:
        """Indices of the eligible boxes the entity may denote; counts how it matched or why not."""
        phrase = normalise(lemma)
        own = [i for i, b in enumerate(eligible) if b.source == DETECTOR and b.category == phrase]
        if own:
            sample.count("tag_entity_matched_detector")
            return own
        match = self.matcher.match(lemma)
        if not match.matched:  # unknown word, or a body part, clothing, stuff
            sample.count(f"tag_entity_unmatched_{match.source}")
            return []
        wanted = set(match.categories)
        if match.source == EMBEDDING:  # the most similar category the image has, only
            present = {b.category for b in eligible}
            wanted = {next((c for c in match.categories if c in present), "")}
        boxes = [i for i, b in enumerate(eligible) if b.category in wanted]
        if boxes:
            sample.count(f"tag_entity_matched_{match.source}")
        elif any(b.category in match.categories for b in sample.objects):
            sample.count("tag_entity_unmatched_boxes_excluded")
        else:
            sample.count("tag_entity_unmatched_no_category_in_image")
        return boxes

    def _tag(self, sample: Sample) -> None:
        eligible = [b for b in sample.objects if self._eligible(b)]
        sample.count("tag_boxes_excluded", len(sample.objects) - len(eligible))
        geometry = np.array([b.bbox for b in eligible], dtype=np.float64).reshape(-1, 4)
        ids = np.array([b.id for b in eligible], dtype=np.int64)
        cap = self.config.max_pairs_per_triplet
        relations: list[Relation] = []
        seen: set[tuple[int, int, str]] = set()
        for triplet in sample.triplets:
            subjects = np.array(self._boxes_for(sample, triplet.subject, eligible), dtype=np.int64)
            objects = np.array(self._boxes_for(sample, triplet.object, eligible), dtype=np.int64)
            # rounded so that ties (and the id tie-break) do not hinge on the last float bits
            scores = np.round(tag_scores(geometry[subjects], geometry[objects], triplet.predicate), 6)
            subject_ids = np.broadcast_to(ids[subjects][:, None], scores.shape)
            object_ids = np.broadcast_to(ids[objects][None, :], scores.shape)
            distinct = (subjects[:, None] != objects[None, :]) & (subject_ids != object_ids)
            scores, subject_ids, object_ids = scores[distinct], subject_ids[distinct], object_ids[distinct]
            if scores.size == 0:
                sample.count("tag_triplets_without_pair")
                continue
            if scores.size > cap:
                sample.count("tag_pairs_truncated", int(scores.size) - cap)
                sample.count("tag_triplets_truncated")
            for k in np.lexsort((object_ids, subject_ids, -scores))[:cap]:
                key = (int(subject_ids[k]), int(object_ids[k]), triplet.predicate)
                if key in seen:  # another triplet ("man"/"person") already grounded it here
                    sample.count("tag_pairs_duplicate")
                    continue
                seen.add(key)
                relations.append(
                    Relation(
                        id=len(relations),
                        subject_id=key[0],
                        object_id=key[1],
                        predicate=triplet.predicate,
                        triplet_id=triplet.id,
                        tag_score=float(scores[k]),
                        predicate_text=triplet.predicate_text,
                    )
                )
        sample.relations = relations
        sample.count("tag_candidates", len(relations))
