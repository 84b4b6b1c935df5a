"""Verify: score every candidate relation with the verifier (sgpipe's RLIPv2-style network, or RLIPv2's
own R-Tagger converted by `sgpipe convert rtagger`), store it when its confidence reaches
`store_threshold` and mark it kept at `keep_threshold` (RLIPv2's generate-low, train-high practice:
everything >= 0.05 is written, pre-training keeps >= 0.20).

All candidate pairs x candidate relation texts of an image are scored in one pass, images batched;
a relation's confidence is the cell of its (subject box, object box) pair and its text, in the form the
verifier reads (its checkpoint's `relation_text`: the surface text "riding" for RLIPv2's R-Tagger, the
lemma "ride" for sgpipe's own verifier). `verify.assignment: candidates` (default) scores only the
relations grounding proposed; `all_pairs` is RLIPv2's assignment: every cell of that matrix reaching
`store_threshold` becomes a relation, those grounding did not propose with `triplet_id` -1 (assigned by
the verifier). `verify.texts: rlipv2` is RLIPv2's whole loop instead (`verify_rlipv2.py`).
Relations are never passed through unscored: a sample the model cannot score fails.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sgpipe import errors
from sgpipe.config import VerifyConfig
from sgpipe.models.checkpoint import WEIGHTS_NAME, is_checkpoint, is_rtagger_folder, not_a_checkpoint
from sgpipe.records import DETECTOR, Relation, Sample
from sgpipe.stages.base import Resources, Stage


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


LEMMA, SURFACE = "lemma", "surface"  # the relation forms a verifier may read (its config's relation_text)


def relation_texts(sample: Sample, form: str) -> list[str]:
    """The text of each relation in the form a verifier reads: the lemma (`predicate`), or the surface text
    (`predicate_text`; in records older than that field, the text of the relation's triplet)."""
    if form == LEMMA:
        return [r.predicate for r in sample.relations]
    triplet_text = {t.id: t.predicate_text for t in sample.triplets}
    return [r.predicate_text or triplet_text.get(r.triplet_id) or r.predicate for r in sample.relations]


def candidate_example(sample: Sample, pixels: Any, form: str = LEMMA) -> tuple[Any, dict[int, int]]:
    """A sample's candidate relations as one model `Example` (distinct box pairs x distinct
    relation texts in the verifier's `form`), and the index of each box id among the example's boxes."""
    from sgpipe.models.verifier import Example, normalise_boxes

    if pixels is None:
        raise ValueError(f"{sample.key}: no decoded image to verify {len(sample.relations)} relations on")
    index = {box.id: i for i, box in enumerate(sample.objects)}
    unknown = {r.subject_id for r in sample.relations} | {r.object_id for r in sample.relations}
    unknown -= set(index)
    if unknown:
        raise ValueError(f"{sample.key}: relations refer to unknown box ids {sorted(unknown)}")
    example = Example(
        pixels=pixels,
        boxes=normalise_boxes([b.bbox for b in sample.objects], sample.width, sample.height),
        box_labels=[b.category for b in sample.objects],
        pairs=list(dict.fromkeys((index[r.subject_id], index[r.object_id]) for r in sample.relations)),
        predicates=list(dict.fromkeys(relation_texts(sample, form))),
        key=sample.key,
    )
    return example, index


ASSIGNED_BY_VERIFIER = -1  # triplet_id of a relation no grounded triplet proposed (all_pairs)


def rtagger_categories(sample: Sample) -> list[str]:
    """The category texts the R-Tagger reads before the relation texts: COCO's 80 names in COCO's order
    when every box is an annotated COCO category (what RLIPv2's COCO run used), else the image's own
    categories (with detected boxes: the phrases that found them, beside any annotated categories)."""
    from sgpipe.vocab.lexicon import load_vocabulary

    coco = list(load_vocabulary("coco"))
    names = list(dict.fromkeys(b.category for b in sample.objects))
    detected = any(b.source == DETECTOR for b in sample.objects)
    return coco if not detected and set(names) <= set(coco) else names


def rtagger_input(sample: Sample, example: Any) -> Any:
    from sgpipe.models.rtagger import TaggerInput

    categories = rtagger_categories(sample)
    position = {name: i for i, name in enumerate(categories)}
    return TaggerInput(
        image=sample.image,
        boxes_xywh=[list(b.bbox) for b in sample.objects],
        box_labels=[position[b.category] for b in sample.objects],
        pairs=example.pairs,
        texts=example.predicates,
        category_names=categories,
    )


class VerifyStage(Stage):
    name = "verify"
    failure_status = errors.FAILED_VERIFY

    def __init__(self, config: VerifyConfig, device: str = "auto", gpus: float = 0.0, vocabulary: str = "coco"):
        super().__init__(config.batch_size, Resources(cpus=1.0, gpus=gpus))
        self.config = config
        self.device = device
        self.vocabulary = vocabulary  # RLIPv2's category table, for verify.texts rlipv2
        self.model: Any = None
        self._sha: str | None = None
        self.form = ""  # the relation form the loaded verifier reads (its checkpoint config says which)

    def setup(self) -> None:
        from sgpipe.models.device import resolve_device
        from sgpipe.models.verifier import Verifier

        if not is_checkpoint(self.config.checkpoint):
            raise errors.SgpipeError(not_a_checkpoint("verify.checkpoint", self.config.checkpoint))
        folder = Path(self.config.checkpoint)
        if is_rtagger_folder(folder):
            from sgpipe.models.rtagger import RTagger

            self.model = RTagger.from_pretrained(
                folder, device=resolve_device(self.device), bf16=self.config.dtype == "bfloat16"  # auto: fp32
            )
        else:
            self.model = Verifier.from_pretrained(folder, device=resolve_device(self.device))
        self._sha = file_sha256(folder / WEIGHTS_NAME)
        self.form = getattr(self.model.config, "relation_text", LEMMA)

    def teardown(self) -> None:
        self.model = None

    def describe(self) -> dict:
        folder = Path(self.config.checkpoint) if self.config.checkpoint else None
        if self._sha is None and folder is not None and (folder / WEIGHTS_NAME).is_file():
            self._sha = file_sha256(folder / WEIGHTS_NAME)
        return {
            "checkpoint": self.config.checkpoint,
            "model_sha256": self._sha,
            "store_threshold": self.config.store_threshold,
            "keep_threshold": self.config.keep_threshold,
            "assignment": self.config.assignment,
            **({"texts": "rlipv2", "vocabulary": self.vocabulary} if self.config.texts == "rlipv2" else {}),
            **({"relation_text": self.form} if self.form else {}),
        }

    def process(self, samples: list[Sample]) -> None:
        assert self.model is not None, "setup() loads the verifier"
        from sgpipe.models.pixels import resize_batch, to_tensor

        if self.config.texts == "rlipv2":
            from sgpipe.stages.verify_rlipv2 import verify_as_rlipv2

            verify_as_rlipv2(self.model, samples, self.vocabulary, self.config)
            return
        todo, examples = [], []
        for sample in samples:
            if not sample.relations:
                continue
            # full size here; resized below on the device
            pixels = to_tensor(sample.image) if sample.image is not None else None
            example, index = candidate_example(sample, pixels, self.form)
            examples.append(example)
            todo.append((sample, index))
        if not examples:
            return
        if not hasattr(self.model, "logit_bias"):  # the R-Tagger: its own resize, one batched call
            inputs = [rtagger_input(sample, example) for (sample, _), example in zip(todo, examples)]
            for (sample, index), example, scores in zip(todo, examples, self.model.score_batch(inputs)):
                self._apply(sample, index, example, scores)
            return
        # squashed to the model's square input on its device (the trainer does it on the host)
        size = self.model.config.image_size
        pixels = resize_batch(
            [e.pixels for e in examples], (size, size), "bilinear", self.model.logit_bias.device
        )
        for example, resized in zip(examples, pixels):
            example.pixels = resized
        for (sample, index), example, scores in zip(
            todo, examples, self.model.score(examples, self.config.dtype)
        ):
            self._apply(sample, index, example, scores)

    def _apply(self, sample: Sample, index: dict[int, int], example: Any, scores: Any) -> None:
        pair_pos = {pair: i for i, pair in enumerate(example.pairs)}
        name_pos = {name: j for j, name in enumerate(example.predicates)}
        stored = []
        for relation, text in zip(sample.relations, relation_texts(sample, self.form)):
            pair = (index[relation.subject_id], index[relation.object_id])
            confidence = float(scores[pair_pos[pair], name_pos[text]])
            relation.confidence = confidence
            relation.kept = confidence >= self.config.keep_threshold
            if confidence >= self.config.store_threshold:
                stored.append(relation)
        sample.count("verify_scored", len(sample.relations))
        sample.count("verify_below_store_threshold", len(sample.relations) - len(stored))
        if self.config.assignment == "all_pairs":
            stored += self._assigned(sample, index, example, scores)
        sample.count("verify_kept", sum(1 for r in stored if r.kept))
        sample.relations = stored

    def _assigned(self, sample: Sample, index: dict[int, int], example: Any, scores: Any) -> list[Relation]:
        """RLIPv2's assignment: cells of pairs x relation texts no candidate holds, reaching store_threshold;
        each such relation takes both forms of its text from the first candidate with it."""
        box_id = {i: box_id for box_id, i in index.items()}
        texts = relation_texts(sample, self.form)
        proposed = {(r.subject_id, r.object_id, t) for r, t in zip(sample.relations, texts)}
        forms = {}
        for relation, text in zip(sample.relations, texts):
            forms.setdefault(text, (relation.predicate, relation.predicate_text))
        next_id = max((r.id for r in sample.relations), default=-1) + 1
        added = []
        for p, (s, o) in enumerate(example.pairs):
            for t, text in enumerate(example.predicates):
                confidence = float(scores[p, t])
                key = (box_id[s], box_id[o], text)
                if key in proposed or confidence < self.config.store_threshold:
                    continue
                lemma, surface = forms[text]
                added.append(Relation(next_id, key[0], key[1], lemma, ASSIGNED_BY_VERIFIER, 0.0, confidence,
                                      confidence >= self.config.keep_threshold, surface))
                next_id += 1
        sample.count("verify_assigned", len(added))
        return added
