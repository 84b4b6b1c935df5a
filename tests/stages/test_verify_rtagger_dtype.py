"""Which precision the verify stage asks of an R-Tagger: fp32 unless `verify.dtype: bfloat16` opts in (bf16
autocast moves its logits by ~0.1 at full size, docs/BENCHMARKS.md)."""

import json
from types import SimpleNamespace

import pytest

from sgpipe.config import VerifyConfig
from sgpipe.models.checkpoint import RTAGGER_MODEL_TYPE, WEIGHTS_NAME
from sgpipe.models.rtagger import RTagger
from sgpipe.stages.verify import VerifyStage


@pytest.mark.parametrize("dtype, bf16", [("auto", False), ("float32", False), ("bfloat16", True)])
def test_rtagger_precision_by_verify_dtype(tmp_path, monkeypatch, dtype, bf16):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": RTAGGER_MODEL_TYPE}))
    (tmp_path / WEIGHTS_NAME).write_bytes(b"weights")
    asked = {}

    def from_pretrained(cls, folder, **options):
        asked.update(options)
        return SimpleNamespace(config=SimpleNamespace(relation_text="surface"))

    monkeypatch.setattr(RTagger, "from_pretrained", classmethod(from_pretrained))
    VerifyStage(VerifyConfig(enabled=True, checkpoint=str(tmp_path), dtype=dtype), device="cpu").setup()
    assert asked == {"device": "cpu", "bf16": bf16}
