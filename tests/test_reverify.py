import io
import json
import random

import pyarrow.parquet as pq
import pytest
from PIL import Image

from sgpipe.errors import ConfigError, ConfigMismatchError, SgpipeError
from sgpipe.output.finalize import finalize_outputs
from sgpipe.output.writer import write_shard
from sgpipe.run.reverify import reverify
from sgpipe.shards import iter_shard_samples
from tests.helpers.samples import build_sample
from tests.helpers.train_shards import squares_sample


@pytest.fixture(scope="module")
def checkpoint(tiny_verifier):
    return tiny_verifier


def _out(folder):
    rng = random.Random(0)
    for index in range(2):
        samples = [squares_sample(10 * index + i, rng) for i in range(3)]
        missing = build_sample(10 * index + 9, "synth", file_name="gone.jpg", width=64, height=64)
        missing.fail("failed_missing", "no such file")
        write_shard(
            folder, index, samples[:2] + [missing] + samples[2:], {"sgpipe": "0", "models": {"tag": {}}}
        )
    finalize_outputs(folder, "synth")
    (folder / "run.json").write_text(json.dumps({"config": {"verify": {}}, "models": {}}))


# records keep 4 decimals (half a unit: 5e-5), and the model scores one image here, several in reverify
TOLERANCE = 6e-5


def _checkpoint_scores(checkpoint, items):
    """The checkpoint's own confidence of each stored relation, per key: the model called here on one
    image at a time, with the record's boxes and its relations' (subject, object) pairs and predicates."""
    from sgpipe.models.pixels import resize_batch, to_tensor
    from sgpipe.models.verifier import Example, Verifier, normalise_boxes

    model = Verifier.from_pretrained(checkpoint)
    size = model.config.image_size
    scores = {}
    for item in items:
        record = item.record
        image = Image.open(io.BytesIO(item.image_bytes)).convert("RGB")
        position = {box["id"]: i for i, box in enumerate(record["objects"])}
        triples = [(r["subject_id"], r["object_id"], r["predicate"]) for r in record["relations"]]
        pairs = list(dict.fromkeys((position[s], position[o]) for s, o, _ in triples))
        predicates = list(dict.fromkeys(p for _, _, p in triples))
        example = Example(
            pixels=resize_batch([to_tensor(image)], (size, size), "bilinear", "cpu")[0],
            boxes=normalise_boxes([box["bbox"] for box in record["objects"]], *image.size),
            box_labels=[box["category"] for box in record["objects"]],
            pairs=pairs,
            predicates=predicates,
        )
        (matrix,) = model.score([example], "float32")
        scores[item.key] = {
            (s, o, p): float(matrix[pairs.index((position[s], position[o])), predicates.index(p)])
            for s, o, p in triples
        }
    return scores


def test_reverify_rescores_stored_relations_and_keeps_failures(tmp_path, checkpoint):
    _out(tmp_path / "old")
    summary = reverify(
        tmp_path / "old",
        checkpoint,
        tmp_path / "new",
        ["verify.store_threshold=0.0", "verify.keep_threshold=0.5"],
    )
    assert "re-scored 2 shards" in summary
    old = {s.key: s.record for s in iter_shard_samples(str(tmp_path / "old"))}
    own = _checkpoint_scores(checkpoint, iter_shard_samples(str(tmp_path / "old")))
    spread = [score for scores in own.values() for score in scores.values()]
    assert max(spread) - min(spread) > 100 * TOLERANCE, "scores that tell relations apart"
    new = {s.key: s for s in iter_shard_samples(str(tmp_path / "new"))}
    assert set(new) == set(old) and all(s.image_bytes for s in new.values())
    for key, item in new.items():
        relations = item.record["relations"]
        assert len(relations) == len(old[key]["relations"])
        for relation in relations:
            expected = own[key][(relation["subject_id"], relation["object_id"], relation["predicate"])]
            assert relation["confidence"] == pytest.approx(expected, abs=TOLERANCE)
            assert relation["kept"] == (relation["confidence"] >= 0.5)
        assert item.record["provenance"]["models"]["verify"]["checkpoint"] == str(checkpoint)
    rows = pq.read_table(tmp_path / "new" / "00000.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["ok", "ok", "failed_missing", "ok"]
    run = json.loads((tmp_path / "new" / "run.json").read_text())
    assert run["thresholds"] == {"store": 0.0, "keep": 0.5} and run["totals"]["count"] == 8
    # the same command again finds every shard complete; other thresholds into NEW are refused
    overrides = ["verify.store_threshold=0.0", "verify.keep_threshold=0.5"]
    again = reverify(tmp_path / "old", checkpoint, tmp_path / "new", overrides)
    assert "re-scored 0 shards (2 already done)" in again
    with pytest.raises(ConfigMismatchError, match="--force"):
        reverify(tmp_path / "old", checkpoint, tmp_path / "new", [])


def test_reverify_drops_relations_below_the_new_store_threshold(tmp_path, checkpoint):
    _out(tmp_path / "old")
    reverify(
        tmp_path / "old",
        checkpoint,
        tmp_path / "new",
        ["verify.store_threshold=0.99", "verify.keep_threshold=0.99"],
    )
    assert all(not s.record["relations"] for s in iter_shard_samples(str(tmp_path / "new")))


def test_reverify_refuses_bad_arguments(tmp_path, checkpoint):
    _out(tmp_path / "old")
    with pytest.raises(ConfigError, match="reverify takes"):
        reverify(tmp_path / "old", checkpoint, tmp_path / "new", ["caption.enabled=true"])
    with pytest.raises(SgpipeError, match="must differ"):
        reverify(tmp_path / "old", checkpoint, tmp_path / "old", [])
    with pytest.raises(SgpipeError, match="not a verifier checkpoint"):
        reverify(tmp_path / "old", tmp_path, tmp_path / "new", [])



def test_rlipv2_texts_need_the_table_the_candidates_were_tagged_with():
    """RLIPv2's texts are the category table of the run that tagged the candidates: a run tagged with
    the dataset's own names cannot be rescored with them, and the error says what to run instead."""
    from sgpipe.run.reverify import reverify_config

    earlier = {"source": {"name": "t", "instances": "i.json", "images": "im"}, "tag": {"vocabulary": "auto"}}
    with pytest.raises(ConfigError) as caught:
        reverify_config(earlier, "ckpt", "new", ["verify.texts=rlipv2"])
    assert caught.value.problems == [
        "verify.texts: rlipv2 reads RLIPv2's category table of the run that tagged the candidates, and OUT "
        "was tagged with tag.vocabulary 'auto'; run it again with tag.vocabulary coco, objects365 or a "
        "paraphrase file, or use verify.texts image"
    ]
    tagged_with_coco = {**earlier, "tag": {"vocabulary": "coco"}}
    assert reverify_config(tagged_with_coco, "ckpt", "new", ["verify.texts=rlipv2"]).verify.texts == "rlipv2"
