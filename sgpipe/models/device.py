"""Where and in what precision a model runs: the one device resolver and dtype table of every model."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

from sgpipe.errors import SgpipeError

if TYPE_CHECKING:
    import torch

DTYPE_NAMES = ("float32", "bfloat16", "float16")  # torch's own names for them


def resolve_device(device: str) -> str:
    """`auto`: CUDA when torch sees a GPU, else the CPU; asking for CUDA without one is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SgpipeError(f"run.device is {device!r} but torch sees no CUDA device")
    return device


def resolve_dtype(dtype: str, device: str) -> "torch.dtype":
    """`auto`: bfloat16 on CUDA, float32 elsewhere; otherwise one of `DTYPE_NAMES`."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in DTYPE_NAMES:
        raise SgpipeError(f"dtype {dtype!r} is not valid. Choose from: auto, {', '.join(DTYPE_NAMES)}")
    return getattr(torch, dtype)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread for the block: reductions split over several threads do not add up in
    a fixed order, so results would differ in their last bits from run to run (and small forwards run
    faster on one thread of a busy machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
