import os

# Offline and quiet everywhere: no hub, local Ray without auth, no progress bars.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_blip(tmp_path_factory) -> str:
    """A BLIP captioner folder with random weights (tests only read it)."""
    from tests.helpers.tiny_models import build_tiny_blip

    return str(build_tiny_blip(tmp_path_factory.mktemp("tiny_blip")))


@pytest.fixture(scope="session")
def tiny_verifier(tmp_path_factory):
    """A verifier checkpoint folder with random weights (tests only read it)."""
    from tests.helpers.tiny_models import save_tiny_verifier

    return save_tiny_verifier(tmp_path_factory.mktemp("verifier") / "ckpt")


@pytest.fixture(scope="session")
def tiny_factual_t5(tmp_path_factory):
    """A tiny T5 taught `FACTUAL_PAIRS` (built once per test session, a few seconds)."""
    from tests.helpers.tiny_models import FACTUAL_PAIRS, build_tiny_t5

    return build_tiny_t5(tmp_path_factory.mktemp("t5") / "factual-t5", FACTUAL_PAIRS)


@pytest.fixture(scope="module")
def local_ray():
    """A fresh local Ray with 2 CPUs for a test module (modules that run the pipeline use it)."""
    from tests.helpers.ray_local import local_ray as start

    with start() as ray:
        yield ray

