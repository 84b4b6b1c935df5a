import pytest

from sgpipe.stages.base import Stage, reraise
from tests.helpers.samples import build_sample


def _samples(n):
    return [build_sample(i) for i in range(n)]


class FlakyStage(Stage):
    """Raises a CUDA-style out-of-memory on batches over 2 samples, and always on one poisoned sample."""

    name = "flaky"
    failure_status = "failed_tag"

    def __init__(self, poisoned):
        super().__init__(batch_size=8)
        self.poisoned = poisoned
        self.calls = []

    def process(self, samples):
        self.calls.append(len(samples))
        if len(samples) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if any(s.image_id == self.poisoned for s in samples):
            raise ValueError("bad sample")
        for s in samples:
            s.count("processed")


def test_an_oom_batch_is_split_and_only_the_bad_sample_fails():
    samples = _samples(8)
    stage = FlakyStage(poisoned=5)
    stage(samples)
    assert [s.status for s in samples] == ["ok"] * 5 + ["failed_tag"] + ["ok"] * 2
    assert "bad sample" in samples[5].error_message
    assert all(s.counters.get("processed") == 1 for s in samples if s.ok)
    assert stage.retries > 0 and max(stage.calls[1:]) <= 4


def test_failed_samples_are_not_processed_again():
    samples = _samples(3)
    samples[1].fail("failed_decode", "x")
    stage = FlakyStage(poisoned=-1)
    stage(samples)
    assert stage.calls == [2] and samples[1].status == "failed_decode"


def test_reraise_handler_surfaces_the_error_in_tests():
    stage = FlakyStage(poisoned=0)
    stage.handler = reraise
    with pytest.raises(ValueError, match="bad sample"):
        stage(_samples(1))
