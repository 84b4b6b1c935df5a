from sgpipe.config import build_config
from sgpipe.estimate import (
    CPU_IMAGES_PER_S,
    FILE_CAPTIONS_PER_IMAGE,
    GPU_IMAGES_PER_S,
    PARSE_CAPTIONS_PER_S,
    estimate,
)


def _config(**sections):
    raw = {"source": {"instances": "i.json", "images": "im", "captions": "c.json"}, **sections}
    return build_config(raw, check_paths=False)


def test_gpu_stages_share_their_gpu_and_bound_the_run():
    config = _config(caption={"enabled": True}, verify={"enabled": True, "checkpoint": "x"})
    result = estimate(config, workers=1, cpus=16, gpus=1)
    shared = 1 / (1 / GPU_IMAGES_PER_S["caption"] + 1 / GPU_IMAGES_PER_S["verify"])
    assert result.bottleneck == "caption+verify" and abs(result.images_per_s - shared) < 1e-6
    assert abs(estimate(config, workers=8, cpus=128, gpus=8).images_per_s - 8 * shared) < 1e-6


def test_models_on_cpu_are_named_not_guessed():
    config = _config(caption={"enabled": True})
    result = estimate(config, workers=2, cpus=2, gpus=0)
    assert result.images_per_s is None and "caption on CPU" in result.describe(100)


def test_cpu_only_run_is_bound_by_its_slowest_stage():
    result = estimate(_config(), workers=2, cpus=2, gpus=0)
    rates = {**CPU_IMAGES_PER_S, "parse": PARSE_CAPTIONS_PER_S / FILE_CAPTIONS_PER_IMAGE}
    assert result.images_per_s == 2 * min(rates.values())
    assert rates[result.bottleneck] == min(rates.values())
    assert "h for 1000 images" in result.describe(1000)
