"""The one device resolver and dtype table that the captioner, the verifier and the trainer share."""

import pytest
import torch

from sgpipe.errors import SgpipeError
from sgpipe.models.device import resolve_device, resolve_dtype


def test_dtype_auto_is_bfloat16_on_cuda_only_and_names_map_to_torch():
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    assert resolve_dtype("auto", "cuda:1") == torch.bfloat16
    assert resolve_dtype("float16", "cuda") == torch.float16
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    with pytest.raises(SgpipeError, match="Choose from: auto, float32, bfloat16, float16"):
        resolve_dtype("fp8", "cuda")


def test_auto_device_follows_what_torch_sees_and_cuda_without_a_gpu_is_an_error():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(SgpipeError, match="torch sees no CUDA device"):
            resolve_device("cuda")
