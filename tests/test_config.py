from dataclasses import dataclass

import pytest

from sgpipe.config import build_config, load_config
from sgpipe.errors import ConfigError
from sgpipe.fields import check_fields, option
from sgpipe.run.identity import config_hash
from sgpipe.run.preflight import checked_config, preflight_problems


@pytest.fixture
def recipe(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "instances.json").write_text("{}")
    (tmp_path / "captions.json").write_text("{}")
    path = tmp_path / "r.yaml"
    path.write_text(
        "source:\n  name: t\n  instances: instances.json\n  images: images\n  captions: captions.json\n"
        "output:\n  dir: out\n"
    )
    return path


def test_relative_paths_resolve_next_to_the_recipe(recipe):
    config = load_config(recipe)
    assert config.source.instances == str(recipe.parent / "instances.json")
    assert config.output.samples_per_shard == 1000 and config.caption.captions_per_image == 10


def test_overrides_are_typed(recipe):
    config = load_config(
        recipe, ["output.samples_per_shard=7", "verify.keep_threshold=0.3", "source.name=o365"]
    )
    assert config.output.samples_per_shard == 7 and config.verify.keep_threshold == 0.3
    assert config.source.name == "o365"


def test_every_problem_is_reported_at_once(recipe):
    with pytest.raises(ConfigError) as caught:
        load_config(
            recipe,
            [
                "output.samples_per_shrad=5",  # typo
                "caption.batch_size=big",  # wrong type
                "tag.vocabulary=klingon",  # not a choice
                "verify.keep_threshold=1.5",  # out of range
                "bogus.key=1",  # unknown section
            ],
        )
    problems = caught.value.problems
    assert len(problems) == 5, problems
    text = str(caught.value)
    assert "did you mean 'output.samples_per_shard'" in text
    assert "caption.batch_size: expected int" in text
    assert "Choose from: auto, coco, none, objects365" in text
    assert "verify.keep_threshold: 1.5 must be in [0.0, 1.0]" in text
    assert "unknown section 'bogus'" in text


def test_verify_without_checkpoint_says_how_to_train_one(recipe):
    config = load_config(recipe, ["verify.enabled=true"])  # a field is fine: the folder is preflight's
    (problem,) = [p for p in preflight_problems(config) if p.startswith("verify.checkpoint")]
    assert "sgpipe train" in problem and "verify.enabled=false" in problem


def test_bad_yaml_and_missing_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    overrides = ["source.instances=/nope.json", "source.images=/nope", "source.captions=/nope.json"]
    config = load_config(None, overrides)  # the config reads no file: these are the preflight's
    assert sum("no such" in p for p in preflight_problems(config)) == 3


def test_the_config_reads_nothing_and_the_command_line_reports_both_kinds_at_once(tmp_path):
    overrides = ["source.instances=/nope.json", "source.images=/nope", "source.captions=/nope.json"]
    config = load_config(None, overrides + ["verify.enabled=true", "verify.checkpoint=/no/such/folder"])
    assert config.source.instances == "/nope.json"
    with pytest.raises(ConfigError) as caught:
        checked_config(None, overrides + ["run.wrkers=2", "caption.batch_size=0"])
    problems = caught.value.problems
    assert any("did you mean 'run.workers'" in p for p in problems)
    assert any("caption.batch_size: 0 must be >= 1" in p for p in problems)
    assert sum("no such" in p for p in problems) == 3  # the world's problems in the same report


def test_config_hash_ignores_placement_but_not_content(recipe):
    base = config_hash(load_config(recipe))
    assert config_hash(load_config(recipe, ["run.workers=8", "output.dir=elsewhere"])) == base
    # raising attempts or time limits for a rerun of failed shards must not refuse the rerun
    scheduling = ["run.shard_attempts=5", "run.shard_timeout_s=7200", "run.placement_timeout_s=60"]
    assert config_hash(load_config(recipe, scheduling)) == base
    assert config_hash(load_config(recipe, ["tag.max_pairs_per_triplet=3"])) != base


def test_caption_engine_is_hashed_only_where_it_decides_the_captions(recipe):
    def digest(*overrides):
        return config_hash(load_config(recipe, list(overrides)))

    on = "caption.enabled=true"
    assert load_config(recipe, [on]).caption.engine == "fast"
    assert digest(on, "caption.engine=fast") != digest(on, "caption.engine=transformers")
    # captions from a file: the engine decides nothing
    assert digest("caption.engine=fast") == digest("caption.engine=transformers")
    with pytest.raises(ConfigError, match="Choose from: fast, transformers"):
        load_config(recipe, ["caption.engine=vllm"])


def test_choices_and_ranges_declared_on_a_field_are_checked():
    @dataclass
    class Section:
        mode: str = option("a", choices=("a", "b"))
        size: int = option(1, low=1, high=4)
        free: int = -7  # declares nothing, so nothing is checked

    problems: list[str] = []
    check_fields(Section(mode="c", size=5), "demo", problems)
    assert problems == ["demo.mode: 'c' is not valid. Choose from: a, b", "demo.size: 5 must be in [1, 4]"]
    problems.clear()
    check_fields(Section(), "demo", problems)
    assert problems == []


def test_field_rules_and_cross_field_rules_are_reported_together(recipe):
    with pytest.raises(ConfigError) as caught:
        load_config(
            recipe,
            ["run.device=tpu", "verify.batch_size=0", "caption.min_length=30", "verify.keep_threshold=0.01"],
        )
    text = str(caught.value)
    assert "run.device: 'tpu' is not valid. Choose from: auto, cpu, cuda" in text
    assert "verify.batch_size: 0 must be >= 1" in text
    assert "caption.max_length: 20 must exceed caption.min_length 30" in text
    assert "verify.keep_threshold 0.01 is below verify.store_threshold 0.05" in text
    assert len(caught.value.problems) == 4


def test_keys_added_later_leave_older_hashes_alone():
    """Hashes computed by the version before `tag.matching`, `verify.texts` and `parse.backend: sng`
    existed: a folder it wrote still resumes. The new keys change the hash once set."""
    raw = {"source": {"name": "t", "instances": "/d/i.json", "images": "/d/x", "captions": "/d/c.json"}}
    assert config_hash(build_config(raw)) == "755b1c06ea0da4d0"
    older = ["verify.assignment=all_pairs", "parse.backend=seq2seq", "parse.model=m"]
    assert config_hash(build_config(raw, older)) == "5836b7e608649de9"
    hashes = {config_hash(build_config(raw, [s, "tag.vocabulary=coco"])) for s in (
        "parse.backend=sng", "tag.matching=rlipv2", "verify.texts=rlipv2")}
    coco = config_hash(build_config(raw, ["tag.vocabulary=coco"]))
    assert len(hashes) == 3 and not hashes & {"755b1c06ea0da4d0", coco}


def test_rlipv2_texts_need_rlipv2s_tagger_and_a_table(tmp_path):
    own = tmp_path / "verifier"
    own.mkdir()
    (own / "config.json").write_text('{"preset": "tiny"}')
    (own / "model.safetensors").write_bytes(b"")
    raw = {"source": {"name": "t", "instances": "i.json", "images": "x", "captions": "c.json"},
           "tag": {"vocabulary": "auto", "embedding_model": "none"},
           "verify": {"enabled": True, "checkpoint": str(own), "texts": "rlipv2"}}
    with pytest.raises(ConfigError, match="with verify.texts rlipv2; RLIPv2 reads its COCO or Objects365"):
        build_config(raw)
    config = build_config(raw, ["tag.vocabulary=coco"])
    assert any("sgpipe's own verifier; convert the R-Tagger" in p for p in preflight_problems(config))
    (own / "config.json").write_text('{"model_type": "rlipv2-rtagger"}')
    assert not any("verify.texts" in p for p in preflight_problems(config))  # an R-Tagger folder: accepted


def test_the_hash_of_a_recipe_is_the_one_the_previous_release_gave():
    """A folder written before the table of stages resumes without --force: the expected values are
    what the previous release's `PipelineConfig.content_hash()` gave for these configs."""
    raw = {
        "source": {"name": "t", "instances": "/x/i.json", "images": "/x/im", "captions": "/x/c.json"},
        "output": {"dir": "/o", "samples_per_shard": 2},
        "run": {"workers": 2, "max_error_rate": 0.5},
        "tag": {"embedding_model": "none"},
    }
    earlier = {
        (): "a57dd4ee25023587",
        ("parse.backend=seq2seq", "parse.model=m"): "e0ba903b836e26ed",
        ("verify.assignment=all_pairs",): "2067a84fe5e518bc",
        # the previous release had one caption engine, transformers' (the fast engine is the default now:
        # an older captioned folder resumes with caption.engine=transformers, as check_resume says)
        ("caption.enabled=true", "caption.engine=transformers", "verify.enabled=true", "verify.checkpoint=/ck"):
            "a1701fbdac412492",
        ("run.seed=3",): "c4a5584e92bf3ea8",
    }
    for overrides, digest in earlier.items():
        assert config_hash(build_config(raw, list(overrides))) == digest, overrides
    # the new run keys place the work: outside the hash
    placed = ["run.executor=ray", "run.layout=pools", "run.devices=2"]
    assert config_hash(build_config(raw, placed)) == earlier[()]


def test_the_local_executor_runs_one_worker_on_this_machine():
    raw = {"source": {"instances": "i.json", "images": "im", "captions": "c.json"}}
    with pytest.raises(ConfigError) as caught:
        build_config(raw, ["run.executor=local", "run.workers=4", "run.address=auto", "run.layout=pools"])
    text = str(caught.value)
    assert "run.workers: 4 with run.executor local" in text and "set run.executor ray" in text
    assert "run.address: a cluster address with run.executor local" in text
    assert "run.layout: pools is a Ray layout" in text and len(caught.value.problems) == 3
    build_config(raw, ["run.executor=local", "run.workers=1"])
