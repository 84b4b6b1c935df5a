import json

import pytest

from sgpipe.config import PipelineConfig
from sgpipe.errors import ConfigMismatchError
from sgpipe.output.guards import check_resume
from sgpipe.run.identity import config_hash


def write_run_json(folder, config: dict, config_hash: str) -> None:
    (folder / "run.json").write_text(json.dumps({"config": config, "config_hash": config_hash}))


def test_an_output_captioned_before_engines_existed_names_the_engine_that_resumes_it(tmp_path):
    config = PipelineConfig()
    config.caption.enabled, config.caption.engine = True, "transformers"
    recorded = config.to_dict()
    del recorded["caption"]["engine"]  # as run.json recorded it then
    write_run_json(tmp_path, recorded, config_hash(config))
    assert check_resume(tmp_path, config_hash(config), force=False)["config_hash"] == config_hash(config)
    config.caption.engine = "fast"
    with pytest.raises(ConfigMismatchError, match="--set caption.engine=transformers resumes it"):
        check_resume(tmp_path, config_hash(config), force=False)


def test_other_mismatches_get_no_engine_hint(tmp_path):
    config = PipelineConfig()
    config.caption.enabled = True
    write_run_json(tmp_path, config.to_dict(), "0123456789abcdef")
    with pytest.raises(ConfigMismatchError) as refused:
        check_resume(tmp_path, config_hash(config), force=False)
    assert "--force" in str(refused.value) and "caption.engine" not in str(refused.value)
