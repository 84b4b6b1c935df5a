"""Verify as RLIPv2's tagger loop did (`verify.texts: rlipv2`), image by image.

The steps of RLIPv2's `generate_relations_using_verb_tagger.verb_tagger_with_text` (`--img_inference_batch
16`) and `tagger_helper.deduplicate_verb_tagger_output`, on the candidates `tag.matching: rlipv2` wrote
(in RLIPv2's order, one relation per pair and relation text):
- groups: the candidates' pairs, in order, cut every `num_queries // 2` (100) pairs; a pair listed for
  several texts takes a query in each place it is listed;
- batches of up to 16 consecutive groups share one text list: RLIPv2's category names (COCO's 80 or
  Objects365's 365, `sgpipe.vocab.rlipv2`), "no objects", then the relation texts of those groups in
  order of first appearance; the image is encoded with that list;
- every pair of a group is scored against every relation text of its batch, and each cell strictly above
  `store_threshold` is a relation; where a (subject box, object box, text) is scored more than once, the
  highest confidence is kept.
Every image is scored on its own texts, so the result does not depend on which images share a shard or
a forward pass (beyond float rounding). Relations the candidates hold keep their triplet; the others
(a text of another pair of the batch) get `triplet_id` -1, as `verify.assignment: all_pairs` writes them.
"""

from __future__ import annotations

from typing import Any

from sgpipe.config import VerifyConfig
from sgpipe.records import Relation, Sample
from sgpipe.stages.verify import ASSIGNED_BY_VERIFIER, SURFACE, relation_texts
from sgpipe.vocab.rlipv2 import RLIPv2Categories, rlipv2_categories

GROUPS_PER_BATCH = 16  # RLIPv2's --img_inference_batch


def batches_of(sample: Sample, group_size: int) -> list[list[list[Relation]]]:
    """The sample's candidates cut into RLIPv2's groups, the groups into batches of GROUPS_PER_BATCH."""
    groups = [sample.relations[i : i + group_size] for i in range(0, len(sample.relations), group_size)]
    return [groups[i : i + GROUPS_PER_BATCH] for i in range(0, len(groups), GROUPS_PER_BATCH)]


def grouped_inputs(sample: Sample, table: RLIPv2Categories, group_size: int) -> tuple[list[Any], list]:
    """The sample's R-Tagger inputs, one per batch of groups, and those batches."""
    from sgpipe.models.rtagger import GroupedInput

    index = {box.id: i for i, box in enumerate(sample.objects)}
    labels = [table.index_of(b.category_id) for b in sample.objects]
    boxes = [list(b.bbox) for b in sample.objects]
    batches = batches_of(sample, group_size)
    inputs = []
    for batch in batches:
        texts = list(dict.fromkeys(r.predicate_text for group in batch for r in group))
        pairs = [[(index[r.subject_id], index[r.object_id]) for r in group] for group in batch]
        inputs.append(GroupedInput(sample.image, boxes, labels, table.names, texts, pairs))
    return inputs, batches


def best_cells(sample: Sample, inputs: list[Any], batches: list, scores: list, threshold: float) -> dict:
    """(subject id, object id, text) -> its highest confidence above `threshold`, in RLIPv2's output order;
    `verify_cells_above_threshold` counts the cells before duplicates are merged (RLIPv2's relations
    before `deduplicate_verb_tagger_output`)."""
    best: dict[tuple[int, int, str], float] = {}
    cells = 0
    for item, batch, per_group in zip(inputs, batches, scores):
        for group, group_scores in zip(batch, per_group):
            for relation, row in zip(group, group_scores):
                for text, confidence in zip(item.texts, row.tolist()):
                    if confidence > threshold:
                        key = (relation.subject_id, relation.object_id, text)
                        best[key] = max(confidence, best.get(key, confidence))
                        cells += 1
    sample.count("verify_cells_above_threshold", cells)
    return best


def apply_cells(sample: Sample, best: dict[tuple[int, int, str], float], config: VerifyConfig) -> None:
    """The sample's relations become the cells kept: its candidates that are among them (in order), then
    the cells no candidate holds (their lemma from the first candidate with that text)."""
    candidates = {(r.subject_id, r.object_id, r.predicate_text): r for r in sample.relations}
    lemma = {}
    for relation in sample.relations:
        lemma.setdefault(relation.predicate_text, relation.predicate)
    stored = []
    for key, relation in candidates.items():
        if key in best:
            relation.confidence = best[key]
            relation.kept = best[key] >= config.keep_threshold
            stored.append(relation)
    next_id = max((r.id for r in sample.relations), default=-1) + 1
    added = 0
    for (subject_id, object_id, text), confidence in best.items():
        if (subject_id, object_id, text) not in candidates:
            stored.append(Relation(next_id + added, subject_id, object_id, lemma[text], ASSIGNED_BY_VERIFIER, 0.0,
                                   confidence, confidence >= config.keep_threshold, text))
            added += 1
    sample.count("verify_scored", len(sample.relations))
    sample.count("verify_below_store_threshold", len(sample.relations) - (len(stored) - added))
    sample.count("verify_assigned", added)
    sample.count("verify_kept", sum(1 for r in stored if r.kept))
    sample.relations = stored


def verify_as_rlipv2(tagger: Any, samples: list[Sample], vocabulary: str, config: VerifyConfig) -> None:
    """Score the samples' candidate groups in one call (images batched, each on its own texts) and keep
    RLIPv2's relations."""
    from sgpipe.models.rtagger import score_groups

    if not hasattr(tagger, "net"):
        raise TypeError("verify.texts rlipv2 needs RLIPv2's R-Tagger (`sgpipe convert rtagger`), not sgpipe's verifier")
    table = rlipv2_categories(vocabulary)
    todo = []
    for sample in samples:
        if not sample.relations:
            continue
        if sample.image is None:
            raise ValueError(f"{sample.key}: no decoded image to verify {len(sample.relations)} relations on")
        for relation, text in zip(sample.relations, relation_texts(sample, SURFACE)):
            relation.predicate_text = text  # records older than the field: their triplet's text
        todo.append((sample, *grouped_inputs(sample, table, tagger.config.num_pairs)))
    flat = [item for _, inputs, _ in todo for item in inputs]
    scores = iter(score_groups(tagger, flat))
    for sample, inputs, batches in todo:
        per_batch = [next(scores) for _ in inputs]
        sample.count("verify_groups", sum(len(batch) for batch in batches))
        apply_cells(sample, best_cells(sample, inputs, batches, per_batch, config.store_threshold), config)
