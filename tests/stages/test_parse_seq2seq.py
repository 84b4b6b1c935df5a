"""The parse stage with `parse.backend: seq2seq`, through the real load and generate path of a tiny T5."""

from __future__ import annotations

import pytest

from sgpipe.run.identity import config_hash
from sgpipe import errors
from sgpipe.config import ParseConfig, build_config
from sgpipe.errors import ConfigError, ModelNotAvailableError
from sgpipe.pipeline import build_stages
from sgpipe.records import Caption, Sample
from sgpipe.stages.base import reraise
from sgpipe.stages.parse import ParseStage
from sgpipe.stages.parse_seq2seq import Seq2SeqParseStage
from tests.helpers.tiny_models import FACTUAL_PAIRS


def seq2seq_config(model, **settings) -> ParseConfig:
    settings.setdefault("max_new_tokens", 40)  # the taught graphs are shorter; unseen captions stop here
    return ParseConfig(backend="seq2seq", model=str(model), batch_size=2, **settings)


@pytest.fixture(scope="module")
def stage(tiny_factual_t5) -> Seq2SeqParseStage:
    stage = Seq2SeqParseStage(seq2seq_config(tiny_factual_t5), device="cpu")
    stage.handler = reraise
    return stage


def make_sample(image_id: int, texts: list[str]) -> Sample:
    return Sample(
        key=f"coco-{image_id:012d}",
        dataset="coco",
        image_id=image_id,
        file_name=f"{image_id}.jpg",
        width=10,
        height=10,
        captions=[Caption(id=i, text=t, source="model") for i, t in enumerate(texts)],
    )


def rows(sample: Sample) -> list[tuple]:
    return [
        (t.subject, t.predicate, t.object, t.subject_text, t.predicate_text, t.object_text, t.support)
        for t in sample.triplets
    ]


def test_stage_identity(stage):
    assert stage.name == "parse" and stage.failure_status == errors.FAILED_PARSE


def test_generated_graphs_become_triplets_with_lemmas_and_surface_text(stage):
    caption = [c for c, _ in FACTUAL_PAIRS]
    sample = make_sample(1, [caption[0], caption[3], caption[0]])
    stage([sample])
    assert sample.ok
    assert rows(sample) == [
        ("man", "ride", "bicycle", "a man", "riding", "a bicycle", 2),
        ("man", "next to", "dog", "a man", "next to", "a dog", 2),
        # plural heads lemmatised as the rule parser does; the caption's verb form as surface
        ("bush", "grow on", "lawn", "bushes", "growing on", "green lawn", 1),
        ("tree", "grow on", "lawn", "trees", "growing on", "green lawn", 1),
    ]
    assert [t.caption_ids for t in sample.triplets] == [[0, 2], [0, 2], [1], [1]]


def test_attributes_stay_out_of_the_triplets_and_are_counted(stage):
    sample = make_sample(2, [FACTUAL_PAIRS[2][0]])  # ( stove , is , white ) , ( stove , in , kitchen ) x2
    stage([sample])
    assert rows(sample) == [("stove", "in", "kitchen", "white stove", "in", "a kitchen", 1)]
    assert sample.counters["parse_attributes"] == 1
    assert sample.counters["parse_tuples_malformed"] == 0


def test_a_malformed_generation_keeps_its_good_tuples_and_counts_the_rest(stage):
    sample = make_sample(3, [FACTUAL_PAIRS[4][0]])  # "... , ( bicycle ," cut off
    stage([sample])
    assert sample.ok
    assert rows(sample) == [
        ("person", "stand behind", "bicycle", "a person", "standing behind", "a bicycle", 1)
    ]
    assert sample.counters["parse_tuples_malformed"] == 1


def test_odd_and_unseen_captions_never_fail(stage):
    odd = ["", "   ", "🐱🐶🐴😀", "un chat noir assis sur le tapis", "zebra zebra zebra", "a " * 400]
    samples = [make_sample(10 + i, [t]) for i, t in enumerate(odd)]
    stage(samples)
    assert all(s.ok for s in samples)
    assert samples[0].triplets == [] and samples[0].counters["parse_captions_skipped"] == 1
    for sample in samples:  # whatever the model writes for unseen words, the counters add up
        assert sample.counters["parse_triplets"] == len(sample.triplets)


def test_the_same_model_gives_the_same_triplets_twice(tiny_factual_t5):
    captions = [FACTUAL_PAIRS[0][0], FACTUAL_PAIRS[4][0], "a dog next to a man on a bicycle"]
    results = []
    for _ in range(2):
        stage = Seq2SeqParseStage(seq2seq_config(tiny_factual_t5), device="cpu")
        stage.handler = reraise
        samples = [make_sample(i, [c]) for i, c in enumerate(captions)]
        stage(samples)
        results.append([[t.to_json() for t in s.triplets] + [s.counters] for s in samples])
    assert results[0] == results[1]


def test_beam_search_reads_the_same_graphs(tiny_factual_t5):
    stage = Seq2SeqParseStage(seq2seq_config(tiny_factual_t5, num_beams=3), device="cpu")
    stage.handler = reraise
    sample = make_sample(1, [FACTUAL_PAIRS[0][0]])
    stage([sample])
    assert [t.lemma_key for t in sample.triplets] == [("man", "ride", "bicycle"), ("man", "next to", "dog")]
    assert stage.describe()["decoding"] == {
        "prompt": "Generate Scene Graph: ",
        "num_beams": 3,
        "max_new_tokens": 40,
    }


def test_describe_names_the_model_and_backend(stage, tiny_factual_t5):
    described = stage.describe()
    assert described["backend"] == "seq2seq" and described["model"] == str(tiny_factual_t5)
    assert described["dtype"] == "float32" and described["spacy_model"].startswith("en_core_web_sm")


def test_a_missing_model_is_named_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    stage = Seq2SeqParseStage(seq2seq_config("someone/no-such-factual-parser"), device="cpu")
    with pytest.raises(ModelNotAvailableError, match="parse model 'someone/no-such-factual-parser'"):
        stage.setup()
    broken = tmp_path / "broken"
    broken.mkdir()
    with pytest.raises(errors.SgpipeError, match="parse model folder"):
        Seq2SeqParseStage(seq2seq_config(broken), device="cpu").setup()


def test_the_backend_picks_the_stage(tmp_path, tiny_factual_t5):
    raw = {"source": {"instances": "i.json", "images": "img", "captions": "c.json"}}
    rules = build_config(raw)
    assert type(build_stages(rules, ["dog"])[1]) is ParseStage
    learned = build_config(
        raw, ["parse.backend=seq2seq", f"parse.model={tiny_factual_t5}"]
    )
    assert type(build_stages(learned, ["dog"])[1]) is Seq2SeqParseStage


def test_config_requires_a_model_and_checks_the_settings():
    raw = {"source": {"instances": "i.json", "images": "img", "captions": "c.json"}}
    with pytest.raises(ConfigError) as caught:
        build_config(
            raw,
            ["parse.backend=seq2seq", "parse.num_beams=0", "parse.max_new_tokens=0", "parse.dtype=int8"],
        )
    message = str(caught.value)
    for problem in ("parse.model: required", "parse.num_beams", "parse.max_new_tokens", "parse.dtype"):
        assert problem in message
    with pytest.raises(ConfigError, match="parse.backend: 'spacy' is not valid. Choose from: rules, seq2seq"):
        build_config(raw, ["parse.backend=spacy"])


def test_rule_configs_hash_as_before_and_seq2seq_settings_change_the_hash():
    raw = {"source": {"instances": "i.json", "images": "img", "captions": "c.json"}}
    rules = build_config(raw)
    # seq2seq settings do not touch a rules run's hash: its output folders still resume
    assert config_hash(build_config(raw, ["parse.num_beams=4"])) == config_hash(rules)
    learned = build_config(raw, ["parse.backend=seq2seq", "parse.model=m"])
    beams = build_config(
        raw, ["parse.backend=seq2seq", "parse.model=m", "parse.num_beams=4"]
    )
    assert len({config_hash(rules), config_hash(learned), config_hash(beams)}) == 3


def test_parse_command_with_a_model(tiny_factual_t5, tmp_path):
    import json

    from typer.testing import CliRunner

    from sgpipe.cli import app

    result = CliRunner().invoke(app, ["parse", FACTUAL_PAIRS[1][0], "--model", str(tiny_factual_t5)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["subject"], x["predicate"], x["object"], x["predicate_text"]) for x in lines] == [
        ("dog", "sit next to", "person", "sitting next to")
    ]
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [{"id": "a", "text": FACTUAL_PAIRS[2][0]}, {"id": 2, "text": ""}, {"id": 3, "text": "🐱"}]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    command = ["parse", "--input", str(source), "--output", str(target), "--model", str(tiny_factual_t5)]
    result = CliRunner().invoke(app, command + ["--num-beams", "2"])
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in target.read_text().splitlines()]
    assert [o["id"] for o in out] == ["a", 2, 3]
    assert [(t["subject"], t["object_text"]) for t in out[0]["triplets"]] == [("stove", "a kitchen")]
    assert out[1]["triplets"] == [] and out[2]["triplets"] == []
    missing = CliRunner().invoke(app, ["parse", "a cat", "--model", "example-org/no-such-parser"])
    assert missing.exit_code != 0 and "no-such-parser" in missing.output


def test_a_model_folder_in_a_recipe_is_relative_to_the_recipe(tmp_path):
    from sgpipe.config import load_config

    (tmp_path / "models" / "parser").mkdir(parents=True)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "source: {instances: i.json, images: img, captions: c.json}\n"
        "parse: {backend: seq2seq, model: models/parser}\n"
    )
    config = load_config(recipe)
    assert config.parse.model == str(tmp_path / "models" / "parser")
    hub = load_config(recipe, ["parse.model=lizhuang144/flan-t5-base-VG-factual-sg"])
    assert hub.parse.model == "lizhuang144/flan-t5-base-VG-factual-sg"  # a hub id stays as given
