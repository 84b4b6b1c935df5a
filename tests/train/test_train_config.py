"""The training recipe goes through the pipeline config's overrides and path resolution."""

import pytest

from sgpipe.errors import ConfigError
from sgpipe.train.config import load_train_config


def test_overrides_set_typed_keys_mapping_entries_and_strings_as_typed(tmp_path):
    config = load_train_config(
        None,
        ["data.train=shards", "model.options.d_model=96", "run.out=00001", "optim.lr=1e-3"],
        check_paths=False,
    )
    assert config.model.options == {"d_model": 96}
    assert config.run.out == "00001" and config.optim.lr == 0.001


def test_recipe_paths_resolve_next_to_the_recipe_and_override_paths_do_not(tmp_path, monkeypatch):
    (tmp_path / "recipes" / "shards").mkdir(parents=True)
    recipe = tmp_path / "recipes" / "r.yaml"
    recipe.write_text("data:\n  train: shards\n  eval: missing\n")
    config = load_train_config(recipe, check_paths=False)
    assert config.data.train == str(tmp_path / "recipes" / "shards") and config.data.eval == "missing"
    monkeypatch.chdir(tmp_path)
    config = load_train_config(recipe, ["data.train=shards"], check_paths=False)
    assert config.data.train == "shards"  # as typed: relative to where the command runs


def test_bad_overrides_are_reported_together(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_train_config(
            None, ["data", "data.train.x=1", "modle.preset=tiny", "data.batch_size=two"], check_paths=False
        )
    text = str(caught.value)
    assert "override 'data': expected section.key=value" in text
    assert "override 'data.train.x=1': keys have the form section.key" in text
    assert "unknown section 'modle' (did you mean 'model'?)" in text
    assert "data.batch_size: expected int" in text
