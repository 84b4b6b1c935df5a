"""Preflight on the weight layouts transformers saves (sharded indexes, `pytorch_model.bin` alone) and on a
hub id cached while offline: its verdict is transformers' own, found by loading each folder here."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sgpipe.run.model_checks import model_problems

BERT = dict(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)


def _tiny_bert():
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig(**BERT))


def _sharded(folder):
    _tiny_bert().save_pretrained(folder, max_shard_size="1KB")
    assert len(list(folder.glob("model-*-of-*.safetensors"))) > 1
    return folder


def _missing_shard(folder):
    _sharded(folder)
    sorted(folder.glob("model-*-of-*.safetensors"))[1].unlink()
    return folder


def _index_without_weight_map(folder):
    _sharded(folder)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 1}}))
    return folder


def _bin_only(folder):
    import torch

    model = _tiny_bert()
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def _loads_in_transformers(folder) -> bool:
    from transformers import BertModel

    try:
        BertModel.from_pretrained(folder)
    except (OSError, ValueError, KeyError, RuntimeError):
        return False
    return True


@pytest.mark.parametrize(
    "build, problem",
    [
        (_sharded, None),
        (_missing_shard, "model.safetensors.index.json names missing shards: model-00002-of-"),
        (_index_without_weight_map, "model.safetensors.index.json is not a weights index (no weight_map)"),
        (_bin_only, None),
    ],
)
def test_weight_layouts_pass_exactly_when_transformers_loads_them(tmp_path, monkeypatch, build, problem):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = build(tmp_path / "model")
    problems = model_problems(str(folder), "caption")
    assert (problems == []) == _loads_in_transformers(folder)
    if problem is None:
        assert problems == []
    else:
        (line,) = problems
        assert line.startswith(f"caption model folder {str(folder)!r}: {problem}")


# In a process of its own: the hub library reads HF_HOME when it is imported.
CACHED = """
import json, sys
from transformers import BlipForConditionalGeneration
from sgpipe.run.model_checks import model_problems
for repo in sys.argv[1:]:
    try:
        BlipForConditionalGeneration.from_pretrained(repo)
        loads = True
    except OSError:
        loads = False
    print(json.dumps({"problems": model_problems(repo, "caption"), "loads": loads}))
"""


def _cached_hub_model(hf_home, repo, files):
    """The layout `huggingface-cli download` leaves: blobs, a snapshot of links to them, refs/main."""
    root = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(revision)
    snapshot = root / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (root / "blobs").mkdir()
    for path in files:
        blob = root / "blobs" / f"blob-{path.name}"
        shutil.copy(path, blob)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / path.name)


def test_a_hub_id_cached_while_offline_passes_and_one_without_its_weights_does_not(tmp_path, tiny_blip):
    files = sorted(Path(tiny_blip).iterdir())
    _cached_hub_model(tmp_path / "hf", "example-org/tiny-blip", files)
    # a download that stopped after the config
    config_only = [path for path in files if path.suffix != ".safetensors"]
    _cached_hub_model(tmp_path / "hf", "example-org/half-blip", config_only)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.getcwd()}
    env.pop("HF_HUB_CACHE", None)
    args = [sys.executable, "-c", CACHED, "example-org/tiny-blip", "example-org/half-blip"]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    cached, half = (json.loads(line) for line in result.stdout.splitlines()[-2:])

    assert cached == {"problems": [], "loads": True}
    assert half["loads"] is False
    (problem,) = half["problems"]
    assert "not in the Hugging Face cache (config and weights); HF_HUB_OFFLINE is set" in problem
