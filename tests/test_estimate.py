from sgpipe.config import build_config
from sgpipe.run.estimate import (
    CAPTION_IMAGES_PER_S_BY_BATCH,
    FILE_CAPTIONS_PER_IMAGE,
    GPU_IMAGES_PER_S,
    HOST_MS_PER_IMAGE,
    PARSE_MS_PER_CAPTION,
    estimate,
    gpu_images_per_s,
    host_seconds_per_image,
)

GPU_BOUND = 1 / (1 / CAPTION_IMAGES_PER_S_BY_BATCH[128] + 1 / GPU_IMAGES_PER_S["verify"])


def _config(**sections):
    raw = {"source": {"instances": "i.json", "images": "im", "captions": "c.json"}, **sections}
    return build_config(raw)


def _model_config():
    return _config(
        source={"instances": "i.json", "images": "im", "captions": ""},
        caption={"enabled": True, "batch_size": 128},
        verify={"enabled": True, "checkpoint": "x"},
    )


def test_host_time_counts_every_caption_and_each_enabled_stage():
    host = host_seconds_per_image(_model_config())
    expected = sum(HOST_MS_PER_IMAGE.values()) + 10 * PARSE_MS_PER_CAPTION
    assert abs(host - expected / 1000) < 1e-12
    plain = host_seconds_per_image(_config())  # file captions only, no model stages
    names = ("decode", "tag", "write")
    expected = sum(HOST_MS_PER_IMAGE[n] for n in names) + FILE_CAPTIONS_PER_IMAGE * PARSE_MS_PER_CAPTION
    assert abs(plain - expected / 1000) < 1e-12


def test_one_worker_per_gpu_leaves_the_gpu_waiting_on_its_host_work():
    config = _model_config()
    one = estimate(config, workers=1, cpus=16, gpus=1)
    serial = 1 / (1 / GPU_BOUND + host_seconds_per_image(config))
    assert one.bottleneck.startswith("the workers' serial work (1 per GPU)")
    assert abs(one.images_per_s - serial) < 1e-9 and serial < GPU_BOUND


def test_enough_workers_per_gpu_make_the_gpu_the_bound():
    config = _model_config()
    shared = estimate(config, workers=3, cpus=16, gpus=1)
    assert shared.bottleneck == "the GPU (caption+verify)" and abs(shared.images_per_s - GPU_BOUND) < 1e-9
    eight = estimate(config, workers=24, cpus=128, gpus=8)
    assert abs(eight.images_per_s - 8 * GPU_BOUND) < 1e-9
    # too few cores for the host work: the cores bound the run
    starved = estimate(config, workers=24, cpus=4, gpus=8)
    assert starved.bottleneck == "CPU cores"
    assert abs(starved.images_per_s - 4 / host_seconds_per_image(config)) < 1e-9


def test_models_on_cpu_are_named_not_guessed():
    config = _config(caption={"enabled": True})
    result = estimate(config, workers=2, cpus=2, gpus=0)
    assert result.images_per_s is None and "caption on CPU" in result.describe(100)


def test_cpu_only_run_is_bound_by_its_workers_host_work():
    config = _config()
    result = estimate(config, workers=2, cpus=2, gpus=0)
    assert abs(result.images_per_s - 2 / host_seconds_per_image(config)) < 1e-9
    assert "h for 1000 images" in result.describe(1000)


def test_caption_rate_follows_the_batch_size():
    def rate(batch):
        return gpu_images_per_s(_config(caption={"enabled": True, "batch_size": batch}), "caption")

    assert rate(64) == rate(100) == CAPTION_IMAGES_PER_S_BY_BATCH[64]
    assert rate(4096) == CAPTION_IMAGES_PER_S_BY_BATCH[512]
    assert rate(8) == CAPTION_IMAGES_PER_S_BY_BATCH[32]


def test_no_estimate_is_made_up_for_the_learned_parser():
    config = _config(parse={"backend": "seq2seq", "model": "m"})
    result = estimate(config, workers=2, cpus=2, gpus=0)
    assert result.images_per_s is None
    assert result.describe(100) == "time estimate: none (the seq2seq parser not benchmarked on this device)"
