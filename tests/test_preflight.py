"""Preflight: every problem of the world a config points at (its models here) is one line, all
reported before any work starts."""

import http.server
import json
import threading

import pytest

from sgpipe.errors import PreflightError
from sgpipe.run.model_checks import model_problems
from sgpipe.run.preflight import check_run
from sgpipe.run.sources import PlannedSource
from tests.helpers.coco_fixture import make_coco
from tests.helpers.runs import tiny_run_config


def check_models(config):
    check_run(config, PlannedSource(config))


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _tiny_bert(folder):
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8
    )
    BertModel(config).save_pretrained(folder)
    return folder


def test_a_saved_model_folder_and_the_shipped_minilm_pass(tmp_path, offline):
    assert model_problems(str(_tiny_bert(tmp_path / "bert")), "caption") == []
    paths = make_coco(tmp_path / "d", n_images=1)
    check_models(tiny_run_config(paths, tmp_path / "out", tag__embedding_model="minilm"))


def test_an_empty_folder_is_refused_for_config_and_weights(tmp_path, offline):
    (tmp_path / "empty").mkdir()
    problems = model_problems(str(tmp_path / "empty"), "caption")
    assert problems == [
        f"caption model folder {str(tmp_path / 'empty')!r}: no config.json",
        f"caption model folder {str(tmp_path / 'empty')!r}: no weights "
        "(model.safetensors or pytorch_model.bin or model.safetensors.index.json)",
    ]


def test_a_config_only_folder_is_refused_for_its_weights(tmp_path, offline):
    folder = _tiny_bert(tmp_path / "bert")
    (folder / "model.safetensors").unlink()
    assert [p.split(": ", 1)[1] for p in model_problems(str(folder), "caption")] == [
        "no weights (model.safetensors or pytorch_model.bin or model.safetensors.index.json)"
    ]


def test_a_corrupt_config_and_truncated_weights_are_named(tmp_path, offline):
    folder = _tiny_bert(tmp_path / "bert")
    (folder / "config.json").write_text('{"model_type": "bert", ')
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    problems = [p.split(": ", 1)[1] for p in model_problems(str(folder), "caption")]
    assert len(problems) == 2
    assert problems[0].startswith("config.json is not valid JSON")
    assert problems[1].startswith("model.safetensors is truncated")
    (folder / "config.json").write_text('{"model_type": "no-such-architecture"}')
    assert "does not load in transformers" in model_problems(str(folder), "caption")[0]


def test_a_hub_id_missing_from_the_cache_offline_is_one_line(offline):
    (problem,) = model_problems("example-org/no-such-captioner", "caption")
    assert "not in the Hugging Face cache" in problem and "HF_HUB_OFFLINE" in problem
    assert "huggingface-cli download example-org/no-such-captioner --local-dir" in problem
    assert "\n" not in problem


def test_every_problem_is_listed_at_once_before_any_work(tmp_path, offline):
    paths = make_coco(tmp_path / "d", n_images=1)
    (tmp_path / "empty").mkdir()
    config = tiny_run_config(
        paths,
        tmp_path / "out",
        caption__enabled=True,
        caption__model=str(tmp_path / "empty"),
        tag__embedding_model="example-org/no-such-embedder",
        parse__spacy_model="xx_no_such_pipeline",
    )
    with pytest.raises(PreflightError) as caught:
        check_models(config)
    problems = caught.value.problems
    assert len(problems) == 4
    # in the order of the table of stages: caption, parse, tag
    assert [p.split(" ", 1)[0] for p in problems] == ["caption", "caption", "parse.spacy_model", "text"]
    assert str(caught.value).count("\n  - ") == 4


class _FakeHub(http.server.BaseHTTPRequestHandler):
    """Answers the model-info API as the hub does: 200 for org/real, 404 RepoNotFound otherwise."""

    def do_GET(self):  # noqa: N802 - the stdlib's name
        if self.path.split("?")[0] in ("/api/models/org/real", "/api/models/org/real/revision/main"):
            body, code, headers = {"id": "org/real", "sha": "0" * 40}, 200, {}
        else:
            body, code, headers = {"error": "Repository not found"}, 404, {"X-Error-Code": "RepoNotFound"}
        data = json.dumps(body).encode()
        self.send_response(code)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_online_a_mistyped_hub_id_is_refused_and_a_real_one_passes(monkeypatch):
    from huggingface_hub import constants

    server = http.server.HTTPServer(("127.0.0.1", 0), _FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert model_problems("org/real", "caption") == []
        (problem,) = model_problems("org/reall", "caption")
        assert "has no model of that name (a typo?)" in problem
    finally:
        server.shutdown()
        server.server_close()


def test_a_missing_seq2seq_parser_fails_the_run_at_start_up_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    paths = make_coco(tmp_path / "d", n_images=1)
    config = tiny_run_config(paths, tmp_path / "out", parse__backend="seq2seq",
                             parse__model="example-org/no-such-parser")
    with pytest.raises(PreflightError, match="parse model 'example-org/no-such-parser'"):
        check_models(config)
    check_models(tiny_run_config(paths, tmp_path / "out"))  # the rule parser needs no model check


def test_the_detector_is_checked_when_the_detect_stage_runs(tmp_path, offline):
    paths = make_coco(tmp_path / "d", n_images=1)
    absent = str(tmp_path / "no-detector")
    check_models(tiny_run_config(paths, tmp_path / "out", detect__model=absent))  # off: not asked
    with pytest.raises(PreflightError) as caught:
        check_models(tiny_run_config(paths, tmp_path / "out", detect__enabled=True, detect__model=absent))
    assert caught.value.problems == [f"detect model {absent!r}: no such folder"]
