"""What a training recipe points at, checked before training starts: the shards (a local spec that
expands, a URL whose backend is installed and that can be reached) and the checkpoint to start from."""

from __future__ import annotations

from sgpipe.errors import SgpipeError
from sgpipe.models.checkpoint import is_checkpoint, not_a_checkpoint
from sgpipe.storage import url_problem
from sgpipe.train.config import TrainConfig


def world_problems(config: TrainConfig) -> list[str]:
    from sgpipe.shards import expand_urls

    problems = []
    if config.model.init and not is_checkpoint(config.model.init):
        problems.append(not_a_checkpoint("model.init", config.model.init))
    data = config.data
    for key in ("train", "eval"):
        spec = getattr(data, key)
        problem = url_problem(spec, f"data.{key}")
        if problem:
            problems.append(problem)
        elif spec:
            try:
                expand_urls(spec, data.storage_options)
            except SgpipeError as error:
                problems.append(f"data.{key}: {error}")
            except OSError as error:  # credentials, endpoint, network
                problems.append(f"data.{key}: cannot reach {spec!r}: {type(error).__name__}: {error}")
    return problems
