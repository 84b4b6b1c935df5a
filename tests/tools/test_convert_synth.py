import json

from sgpipe.shards import iter_shard_samples
from sgpipe.synth.truth import canonical_predicate
from sgpipe.synth.world import generate_world
from sgpipe.tools.convert import convert_synth
from sgpipe.tools.convert_synth import predicate_phrasings


def _triples(rows):
    return {(r["subject_id"], r["object_id"], r["predicate"]) for r in rows}


def test_convert_synth_writes_true_and_hallucinated_relations(tmp_path):
    generate_world(tmp_path / "world", n_images=5, seed=3, image_size=128)
    summary = convert_synth(tmp_path / "world", tmp_path / "shards", samples_per_shard=2, paraphrases=False)
    assert "wrote 3 shards, 5 images" in summary
    ann = tmp_path / "world" / "annotations"
    truth = _triples(r for row in json.loads((ann / "relations.json").read_text()) for r in row["relations"])
    false = _triples(json.loads((ann / "hallucinations.json").read_text()))
    records = list(iter_shard_samples(str(tmp_path / "shards")))
    assert [s.key for s in records] == [f"synth-{i:012d}" for i in range(1, 6)]
    assert all(s.image_bytes and s.image_ext == "jpg" for s in records)
    stored = {
        (r["subject_id"], r["object_id"], r["predicate"]): r for s in records for r in s.record["relations"]
    }
    assert {k for k, r in stored.items() if r["kept"] and r["confidence"] == 1.0} == truth
    assert {k for k, r in stored.items() if not r["kept"] and r["confidence"] == 0.0} == false - truth
    assert all(s.record["captions"] for s in records)
    assert (tmp_path / "shards" / "shardindex.json").is_file() and (
        tmp_path / "shards" / "stats.json"
    ).is_file()


def test_paraphrases_repeat_each_relation_in_the_parsers_phrasings(tmp_path):
    generate_world(tmp_path / "world", n_images=3, seed=4, image_size=128)
    convert_synth(tmp_path / "world", tmp_path / "shards", paraphrases=True)
    truth = _triples(
        r
        for row in json.loads((tmp_path / "world" / "annotations" / "relations.json").read_text())
        for r in row["relations"]
    )
    rows = [r for s in iter_shard_samples(str(tmp_path / "shards")) for r in s.record["relations"]]
    for r in rows:  # every phrasing carries the truth of the canonical relation it names
        assert r["kept"] == ((r["subject_id"], r["object_id"], canonical_predicate(r["predicate"])) in truth)
    expected = {(s, o, phrase) for s, o, p in truth for phrase in predicate_phrasings()[p]}
    assert {k for k in _triples(rows) if k in expected} == expected
    assert (
        predicate_phrasings()["in front of"][0] == "in front of"
        and "cover" in predicate_phrasings()["in front of"]
    )
