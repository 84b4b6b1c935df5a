"""One fresh local Ray per test module, never a cluster that happens to run on the machine."""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def local_ray(num_cpus: int = 2) -> Iterator[object]:
    """A local Ray with `num_cpus` for the block; `run_pipeline` reuses it rather than starting its own.

    `address="local"` starts a new instance even where another Ray runs on the machine (ray.init()
    alone would join it), so a test never schedules on, or kills workers of, someone else's cluster."""
    import ray

    ray.init(
        address="local", num_cpus=num_cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False
    )
    try:
        yield ray
    finally:
        ray.shutdown()
