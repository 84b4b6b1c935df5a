"""Running one stage in a test the way the processor does: set up, batches, tear down."""

from __future__ import annotations

from sgpipe.records import Sample
from sgpipe.stages.base import Stage


def run_stage(stage: Stage, samples: list[Sample]) -> list[Sample]:
    stage.setup()
    try:
        return stage(samples)
    finally:
        stage.teardown()
