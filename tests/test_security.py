"""Untrusted input runs no code: recipes and overrides are read with `yaml.safe_load`, a model folder's own
code runs only with `caption.trust_remote_code`, and `source.name` (the first part of every tar member
name) holds letters, digits and '_' only."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from sgpipe.records import sample_key
from tests.helpers.cli_runs import invoke
from tests.helpers.coco_fixture import make_coco


@pytest.fixture
def recipe(tmp_path):
    paths = make_coco(tmp_path / "coco", n_images=1)
    path = tmp_path / "recipe.yaml"
    path.write_text(
        f"source:\n  name: t\n  instances: {paths['instances']}\n  images: {paths['images']}\n"
        f"  captions: {paths['captions']}\noutput:\n  dir: {tmp_path / 'out'}\n"
        "tag:\n  embedding_model: none\n"
    )
    return path


def _code_that_leaves(marker):
    """A YAML value that, read with yaml.load's full loader, runs Python and creates `marker`."""
    return f"!!python/object/apply:os.system ['touch {marker}']"


def test_recipes_and_overrides_are_read_without_running_code(recipe, tmp_path):
    marker = tmp_path / "ran"
    for command in ("run", "train"):
        evil = tmp_path / f"{command}.yaml"
        evil.write_text(f"source:\n  name: {_code_that_leaves(marker)}\n")
        result = invoke([command, evil, "--dry-run"] if command == "run" else [command, evil])
        assert result.exit_code == 2 and "not valid YAML" in result.output, result.output
    for key in ("source.name", "run.workers"):  # the text as typed: refused as a name, as a number
        result = invoke(["run", recipe, "--dry-run", "--set", f"{key}={_code_that_leaves(marker)}"])
        assert result.exit_code == 2 and f"{key}: " in result.output, result.output
    assert not marker.exists()
    assert invoke(["run", recipe, "--dry-run"]).exit_code == 0  # the recipe itself is fine


@pytest.mark.parametrize("name", ["../up", "a/b", "a.b", "a-b", "", "coco\n", "cöco", "a b"])
def test_a_source_name_other_than_letters_digits_and_underscore_is_refused(recipe, name):
    result = invoke(["run", recipe, "--dry-run", "--set", f"source.name={name}"])
    assert result.exit_code == 2 and "source.name" in result.output, result.output
    with pytest.raises(ValueError, match="letters, digits and '_' only"):
        sample_key(name, 1)


def test_a_block_scalar_name_with_its_newline_is_refused(recipe):
    text = recipe.read_text().replace("  name: t\n", "  name: |\n    coco\n")
    recipe.write_text(text)
    result = invoke(["run", recipe, "--dry-run"])
    assert result.exit_code == 2 and "source.name: 'coco\\n'" in result.output, result.output


def test_names_of_letters_digits_and_underscore_make_plain_keys(recipe):
    assert invoke(["run", recipe, "--dry-run", "--set", "source.name=coco_2017"]).exit_code == 0
    assert sample_key("O365_v2", 7) == "O365_v2-000000000007"


# In a process of its own: transformers copies a folder's own code into HF_MODULES_CACHE, read at import.
LOAD_TWICE = """
import json, pathlib, sys
from sgpipe.config import load_config
from sgpipe.stages.caption import CaptionStage
recipe, folder, marker = sys.argv[1:4]
for extra in ([], ["caption.trust_remote_code=true"]):
    config = load_config(recipe, ["caption.enabled=true", f"caption.model={folder}", *extra])
    stage = CaptionStage(config.caption, device="cpu")
    stage.setup()
    print(json.dumps({"class": type(stage.captioner.model).__name__, "ran": pathlib.Path(marker).exists()}))
"""


def _with_its_own_code(blip, folder, marker):
    """The tiny BLIP, plus modules of its own (named in config.json's auto_map) that create `marker`."""
    shutil.copytree(blip, folder)
    touch = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
    (folder / "configuration_marked.py").write_text(
        touch + "from transformers import BlipConfig\n\n\nclass MarkedBlipConfig(BlipConfig):\n    pass\n"
    )
    (folder / "modeling_marked.py").write_text(
        touch + "from transformers import BlipForConditionalGeneration\n"
        "from .configuration_marked import MarkedBlipConfig\n\n\n"
        "class MarkedBlip(BlipForConditionalGeneration):\n    config_class = MarkedBlipConfig\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "configuration_marked.MarkedBlipConfig",
        "AutoModelForImageTextToText": "modeling_marked.MarkedBlip",
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_model_folders_own_code_runs_only_with_trust_remote_code(recipe, tiny_blip, tmp_path):
    marker = tmp_path / "ran"
    folder = _with_its_own_code(tiny_blip, tmp_path / "blip-with-code", marker)
    env = {
        **os.environ,
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.getcwd(),
    }
    args = [sys.executable, "-c", LOAD_TWICE, str(recipe), str(folder), str(marker)]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    default, trusted = (json.loads(line) for line in result.stdout.splitlines()[-2:])
    # by default transformers' own BLIP class reads the folder and its code never runs
    assert default == {"class": "BlipForConditionalGeneration", "ran": False}
    assert trusted == {"class": "MarkedBlip", "ran": True}  # the user's explicit opt-in
