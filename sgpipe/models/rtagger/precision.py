"""Where the R-Tagger leaves autocast: the parts whose result moves with the last bits of their inputs."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def full_precision(like: torch.Tensor) -> Iterator[None]:
    """Autocast off for the block, on the device of `like`; the block casts its inputs with `.float()`."""
    with torch.autocast(like.device.type, enabled=False):
        yield
