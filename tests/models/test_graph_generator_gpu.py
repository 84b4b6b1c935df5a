"""The learned parser on CUDA (off by default: run with `-m gpu` on a machine with a GPU)."""

import pytest
import torch

from sgpipe.config import ParseConfig
from sgpipe.stages.parse_seq2seq import Seq2SeqCaptionParser
from tests.helpers.tiny_models import FACTUAL_PAIRS

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_parses_as_the_cpu_does(tiny_factual_t5, dtype):
    captions = [caption for caption, _ in FACTUAL_PAIRS]
    config = ParseConfig(
        backend="seq2seq", model=str(tiny_factual_t5), batch_size=2, max_new_tokens=40, dtype=dtype
    )
    on_cpu = Seq2SeqCaptionParser(config, device="cpu").load()
    on_gpu = Seq2SeqCaptionParser(config, device="cuda").load()
    assert next(on_gpu.generator.model.parameters()).device.type == "cuda"
    assert on_gpu.describe()["dtype"] == dtype
    cpu_triplets, _ = on_cpu.parse_prepared(captions)
    gpu_triplets, _ = on_gpu.parse_prepared(captions)
    assert gpu_triplets == cpu_triplets  # the taught graphs survive bf16 and another device
    assert on_gpu.parse_prepared(captions)[0] == gpu_triplets  # and repeat exactly
