"""Tag as RLIPv2 did (`tag.matching: rlipv2`): every ordered pair of boxes whose names are a triplet's.

The steps of RLIPv2's `transform_BLIP_sngs_to_verb_tagger_input_format`, per image:
- names: the image's category names (`sgpipe.vocab.rlipv2`, by category id) in the order their first
  annotation comes in the file, crowd and dropped boxes included;
- each triplet whose subject and object spans both match a name becomes (subject name, relation text,
  object name), the surface relation text ("riding"); repeats are dropped, first seen first;
- boxes: the image's non-crowd boxes in file order (the ones RLIPv2's CocoDetection keeps: crowd boxes out,
  boxes empty after clamping to the image out, which sgpipe's source already drops);
- candidates: for each ordered pair of distinct boxes (first box major), for each such triplet whose names
  are the pair's, one relation. A pair appears once per matching triplet, so with its relation texts.

With a paraphrase file of one's own as the table (`tag.vocabulary: FILE.json`), a box whose category the
file names otherwise (a file not in the dataset's id order) fails its image with both names.

The relations keep that order: the verify stage's RLIPv2 texts cut them into RLIPv2's groups of pairs.
`tag_score` is 0 (RLIPv2 ranks nothing); `triplet_id` is the first triplet of that (names, text).
"""

from __future__ import annotations

from sgpipe import errors
from sgpipe.config import TagConfig
from sgpipe.records import Relation, Sample, Triplet
from sgpipe.stages.base import Resources, Stage
from sgpipe.stages.tag import TAG_BATCH_SIZE
from sgpipe.vocab.rlipv2 import RLIPv2Categories, is_table_file, rlipv2_categories


def named_triplets(sample: Sample, table: RLIPv2Categories) -> list[tuple[tuple[str, str, str], Triplet]]:
    """(subject name, relation text, object name) of each triplet both of whose entities match a name of
    the image, once each, in the triplets' order."""
    names = [table.name_of(c) for c in sample.category_order()]
    keys: dict[tuple[str, str, str], Triplet] = {}
    for triplet in sample.triplets:
        subject = table.match(triplet.subject_text, names)
        obj = table.match(triplet.object_text, names)
        if subject is None or obj is None:
            sample.count("tag_triplets_unmatched")
            continue
        keys.setdefault((subject, triplet.predicate_text, obj), triplet)
    return list(keys.items())


class RLIPv2TagStage(Stage):
    name = "tag"
    failure_status = errors.FAILED_TAG

    def __init__(self, config: TagConfig, batch_size: int = TAG_BATCH_SIZE):
        super().__init__(batch_size, Resources(cpus=1.0))
        self.config = config
        self.table: RLIPv2Categories | None = None

    def setup(self) -> None:
        self.table = rlipv2_categories(self.config.vocabulary)

    def describe(self) -> dict:
        return {"matching": "rlipv2", "vocabulary": self.config.vocabulary}

    def process(self, samples: list[Sample]) -> None:
        assert self.table is not None, "setup() loads RLIPv2's category table"
        for sample in samples:
            self._tag(sample, self.table)

    def _tag(self, sample: Sample, table: RLIPv2Categories) -> None:
        if is_table_file(table.vocabulary):
            _check_names(sample, table)
        by_names: dict[tuple[str, str], list[tuple[str, Triplet]]] = {}  # the triplets of each name pair, in order
        for (subject_name, text, object_name), triplet in named_triplets(sample, table):
            by_names.setdefault((subject_name, object_name), []).append((text, triplet))
        boxes = [b for b in sample.objects if not b.iscrowd]
        names = [table.name_of(b.category_id) for b in boxes]
        relations: list[Relation] = []
        for i, subject in enumerate(boxes):
            for j, obj in enumerate(boxes):
                for text, triplet in by_names.get((names[i], names[j]), []) if i != j else []:
                    relations.append(Relation(
                        id=len(relations), subject_id=subject.id, object_id=obj.id, predicate=triplet.predicate,
                        triplet_id=triplet.id, tag_score=0.0, predicate_text=text,
                    ))
        sample.relations = relations
        sample.count("tag_boxes_excluded", len(sample.objects) - len(boxes))
        sample.count("tag_candidates", len(relations))


def _check_names(sample: Sample, table: RLIPv2Categories) -> None:
    """A table file names categories by their place in it: each box's own name must be the one it gives."""
    for box in sample.objects:
        named = table.name_of(box.category_id)
        if named.lower() != box.category.strip().lower():
            raise ValueError(
                f"tag.vocabulary {table.vocabulary} names category id {box.category_id} {named!r}, the "
                f"dataset calls it {box.category!r}: the file lists the dataset's categories in id order 1..N"
            )
