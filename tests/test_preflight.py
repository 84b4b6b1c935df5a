import pytest

from sgpipe.errors import ModelNotAvailableError
from sgpipe.preflight import check_model, check_models
from tests.helpers.coco_fixture import make_coco
from tests.helpers.runs import tiny_run_config


def test_a_missing_captioner_fails_the_run_at_start_up_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    paths = make_coco(tmp_path / "d", n_images=1)
    config = tiny_run_config(paths, tmp_path / "out", caption__enabled=True,
                             caption__model="example-org/no-such-captioner")
    with pytest.raises(ModelNotAvailableError, match="no-such-captioner") as caught:
        check_models(config)
    assert "--local-dir" in str(caught.value) and "HF_HUB_OFFLINE" in str(caught.value)


def test_local_folders_and_the_shipped_minilm_pass(tmp_path):
    (tmp_path / "model").mkdir()
    check_model(str(tmp_path / "model"), "caption")
    paths = make_coco(tmp_path / "d", n_images=1)
    check_models(tiny_run_config(paths, tmp_path / "out", tag__embedding_model="minilm"))


def test_a_missing_seq2seq_parser_fails_the_run_at_start_up_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    paths = make_coco(tmp_path / "d", n_images=1)
    config = tiny_run_config(paths, tmp_path / "out", parse__backend="seq2seq",
                             parse__model="example-org/no-such-parser")
    with pytest.raises(ModelNotAvailableError, match="the parse model 'example-org/no-such-parser'"):
        check_models(config)
    check_models(tiny_run_config(paths, tmp_path / "out"))  # the rule parser needs no model check
