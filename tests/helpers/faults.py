"""Writes the output refuses, injected at the one place every file is written
(`sgpipe.output.atomic`), in this process or, through a stage's `setup()`, in a Ray worker's."""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Any, Iterator

from sgpipe.config import PipelineConfig
from sgpipe.pipeline import build_stages
from sgpipe.records import Sample
from sgpipe.stages.base import Stage

REFUSED_NAME = "00002.tar"  # the file the full disk refuses: shards 0 and 1 are written first


def refuse_writes(refused_name: str = REFUSED_NAME, code: int = errno.ENOSPC) -> list[str]:
    """From now on in this process, writing `refused_name` fails with `code`, as the kernel says it;
    returns the list of refused paths (one entry per refused write)."""
    import sgpipe.output.atomic as atomic

    real = atomic._atomic_file
    refused: list[str] = []

    @contextlib.contextmanager
    def failing(path: Any, mode: str, sync_folder: bool) -> Iterator[Any]:
        if path.name == refused_name:
            refused.append(str(path))
            raise OSError(code, os.strerror(code))
        with real(path, mode, sync_folder) as handle:
            yield handle

    atomic._atomic_file = failing
    return refused


class FullDiskStage(Stage):
    """Changes nothing in the records; its `setup()` makes the worker's disk refuse shard 2's tar."""

    name = "full_disk"

    def setup(self) -> None:
        refuse_writes()

    def process(self, samples: list[Sample]) -> None:
        pass


def stages_on_a_full_disk(config: PipelineConfig, categories: list[str]) -> list[Stage]:
    return build_stages(config, categories) + [FullDiskStage()]
