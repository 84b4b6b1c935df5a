"""The R-Tagger on CUDA (off by default: run with `-m gpu` on a machine with a GPU): fp32 equals RLIPv2's
reference, and a bf16 batch stays near it."""

from pathlib import Path

import numpy as np
import pytest
import torch

from sgpipe.models.rtagger.reference import fixture_inputs, load_fixture, tagger_for_fixture

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

REFERENCE = Path(__file__).parent / "rtagger_fixtures" / "reference_scores.json"


@pytest.fixture(scope="module")
def setup():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    fixture = load_fixture(REFERENCE)
    return fixture, tagger_for_fixture(fixture, device="cuda")


def test_fp32_on_cuda_equals_rlipv2(setup):
    fixture, tagger = setup
    tagger.bf16 = False
    for item, case in zip(fixture_inputs(fixture), fixture["cases"]):
        scores = tagger.score_batch([item])[0]
        assert np.abs(scores - np.asarray(case["scores"])).max() < 1e-4


def test_bf16_batch_on_cuda(setup):
    fixture, tagger = setup
    tagger.bf16 = True
    for scores, case in zip(tagger.score_batch(fixture_inputs(fixture)), fixture["cases"]):
        assert np.isfinite(scores).all() and np.abs(scores - np.asarray(case["scores"])).max() < 0.1
