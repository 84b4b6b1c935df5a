"""The parse stage with SceneGraphParser (`parse.backend: sng`): RLIPv2's triplets, both relation forms,
surface texts kept apart, and the optional extra's errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sgpipe.config import ParseConfig, build_config
from sgpipe.errors import SgpipeError
from sgpipe.pipeline import build_stages
from sgpipe.run.preflight import preflight_problems
from sgpipe.records import Caption
from sgpipe.stages.base import reraise
from sgpipe.stages.parse_sng import SngParseStage
from tests.helpers.samples import build_sample

sng_parser = pytest.importorskip("sng_parser", reason="parse.backend sng needs SceneGraphParser (sgpipe[rlipv2])")


@pytest.fixture(scope="module")
def stage():
    stage = SngParseStage(ParseConfig(backend="sng"))
    stage.handler = reraise
    stage.setup()
    yield stage
    stage.teardown()


def _sample(image_id: int, texts: list[str]):
    return build_sample(image_id, "coco", captions=[Caption(i, t, "model") for i, t in enumerate(texts)])


def test_triplets_hold_the_surface_relation_and_its_lemma(stage):
    sample = _sample(1, ["A man riding a horse", "a woman is sitting on a bench next to a dog"])
    stage([sample])
    surface = [(t.subject_text, t.predicate_text, t.object_text) for t in sample.triplets]
    assert surface == [("A man", "riding", "a horse"), ("a woman", "sitting on", "a bench"),
                       ("a woman", "next to", "a dog")]  # the spans as written: RLIPv2 lower-cases them to match
    assert [(t.subject, t.object) for t in sample.triplets] == [("man", "horse"), ("woman", "bench"), ("woman", "dog")]
    assert sample.triplets[1].predicate == "sit on"  # SceneGraphParser's lemma_relation
    assert [t.id for t in sample.triplets] == [0, 1, 2] and sample.counters["parse_triplets"] == 3


def test_relation_texts_stay_apart_and_support_counts_captions(stage):
    """"riding" and "rides" are two texts to RLIPv2's tagger: two triplets, not one lemma."""
    sample = _sample(2, ["a man riding a horse", "a man rides a horse", "a man riding a horse"])
    stage([sample])
    assert [(t.predicate_text, t.support, t.caption_ids) for t in sample.triplets] == [
        ("riding", 2, [0, 2]), ("rides", 1, [1])]


def test_captions_are_parsed_as_written(stage):
    """No whitespace clean-up (nor cut, nor language filter), as RLIPv2 parsed them: the span keeps its two
    spaces, and the tag stage matches boxes on it as RLIPv2 did."""
    sample = _sample(3, ["a  man riding   a horse"])
    stage([sample])
    assert [(t.subject_text, t.predicate_text, t.object_text) for t in sample.triplets] == [("a  man", "riding", "a horse")]


def test_a_missing_extra_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sng_parser", None)  # import fails as if not installed
    with pytest.raises(SgpipeError, match=r"sgpipe\[rlipv2\]"):
        SngParseStage(ParseConfig(backend="sng")).setup()
    config = build_config({"source": {"name": "coco", "instances": "i.json", "images": "x", "captions": "c.json"},
                           "parse": {"backend": "sng"}})
    assert any("sgpipe[rlipv2]" in p for p in preflight_problems(config))


def test_an_uninstalled_spacy_model_is_named(stage):
    with pytest.raises(SgpipeError, match="no spaCy model among nonexistent_model"):
        SngParseStage(ParseConfig(backend="sng", spacy_model="nonexistent_model")).setup()


def test_the_default_path_never_imports_scenegraphparser(tmp_path):
    code = (
        "import sys\n"
        "from sgpipe.config import build_config\n"
        "from sgpipe.pipeline import build_stages\n"
        "c = build_config({'source': {'name': 'coco', 'instances': 'i', 'images': 'x', 'captions': 'c'}, "
        "'tag': {'embedding_model': 'none'}})\n"
        "stages = build_stages(c, ['person'])\n"
        "[s.setup() for s in stages[1:]]\n"
        "assert 'sng_parser' not in sys.modules, 'imported'\n"
        "print([s.name for s in stages])\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "parse" in result.stdout


def test_sng_backend_is_chosen_by_config():
    config = build_config({"source": {"name": "coco", "instances": "i", "images": "x", "captions": "c"},
                           "parse": {"backend": "sng"}})
    assert any(isinstance(s, SngParseStage) for s in build_stages(config, ["person"]))
