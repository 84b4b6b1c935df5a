"""A worker's chunks (never smaller than a model stage's batch, so the GPU sees the batch asked
for) and the stage lifecycle the processor drives."""

from sgpipe.pipeline import CHUNK_SIZE, build_stages, chunk_size, worker_resources
from sgpipe.stages.base import Resources, Stage
from tests.helpers.coco_fixture import make_coco
from tests.helpers.runs import planned_processor, tiny_run_config


class BatchRecorder(Stage):
    name = "recorder"

    def __init__(self, batch_size: int):
        super().__init__(batch_size)
        self.batches: list[int] = []
        self.events: list[str] = []

    def setup(self):
        self.events.append("setup")

    def teardown(self):
        self.events.append("teardown")

    def process(self, samples):
        self.events.append("process")
        self.batches.append(len(samples))


def test_chunk_size_follows_the_largest_model_batch(tmp_path):
    paths = make_coco(tmp_path / "data", n_images=1)
    config = tiny_run_config(paths, tmp_path / "out")
    assert chunk_size(config) == CHUNK_SIZE
    config = tiny_run_config(paths, tmp_path / "out", caption__enabled=True, caption__batch_size=128)
    assert chunk_size(config) == 128
    config.verify.enabled, config.verify.batch_size = True, 200  # (a checkpoint is not needed here)
    assert chunk_size(config) == 200
    # a disabled stage's batch size does not count
    assert chunk_size(tiny_run_config(paths, tmp_path / "out", caption__batch_size=512)) == CHUNK_SIZE


def test_a_model_stage_gets_full_batches_across_chunks(tmp_path):
    n = CHUNK_SIZE + 6
    paths = make_coco(tmp_path / "data", n_images=n, width=8, height=8)
    config = tiny_run_config(
        paths, tmp_path / "out", caption__enabled=True, caption__batch_size=n, output__samples_per_shard=n
    )
    recorder = BatchRecorder(batch_size=n)
    processor = planned_processor(config, stages=[recorder])
    processor.process_shard(0)
    assert recorder.batches == [n]  # not [CHUNK_SIZE, 6]


class FailsOnImage20(Stage):
    """Raises on any batch holding image 20, as an out-of-memory batch would on one bad input."""

    name = "flaky"
    failure_status = "failed_tag"
    batch_size = 4

    def process(self, samples):
        if any(s.image_id == 20 for s in samples):
            raise RuntimeError("CUDA out of memory")


def test_batch_splits_and_attempts_reach_the_shards_stats_but_not_its_bytes(tmp_path):
    import json

    paths = make_coco(tmp_path / "data", n_images=4, width=8, height=8)
    outputs = {}
    for name, attempts in (("first", None), ("third", {"count": 3, "workers_lost": 1, "timed_out": 1})):
        config = tiny_run_config(paths, tmp_path / name, output__samples_per_shard=4)
        processor = planned_processor(config, [FailsOnImage20()])
        stats = processor.process_shard(0, attempts)
        assert stats == json.loads((tmp_path / name / "00000_stats.json").read_text())
        outputs[name] = stats, (tmp_path / name / "00000.tar").read_bytes()
    stats, tar = outputs["first"]
    # 4 -> 2 + 2 -> the pair holding image 20 -> 1 + 1: two splits; image 20 alone fails
    assert stats["retries"]["batch_splits"] == {"flaky": 2}
    assert stats["retries"]["attempts"] == {"count": 1, "workers_lost": 0, "timed_out": 0}
    assert stats["status"] == {"failed_tag": 1, "ok": 3}
    third, third_tar = outputs["third"]
    assert third["retries"]["attempts"] == {"count": 3, "workers_lost": 1, "timed_out": 1}
    assert third_tar == tar


def test_the_processor_sets_stages_up_once_and_tears_them_down(tmp_path):
    paths = make_coco(tmp_path / "data", n_images=4, width=8, height=8)
    config = tiny_run_config(paths, tmp_path / "out", output__samples_per_shard=2)
    recorder = BatchRecorder(batch_size=8)
    processor = planned_processor(config, stages=[recorder])
    processor.process_shard(0)
    processor.process_shard(1)
    processor.teardown()
    processor.teardown()  # a second call has nothing left to free
    assert recorder.events == ["setup", "process", "process", "teardown"]


def test_stages_carry_their_batch_size_and_the_resources_their_table_entry_declares(tmp_path):
    paths = make_coco(tmp_path / "data", n_images=1)
    config = tiny_run_config(
        paths, tmp_path / "out", caption__enabled=True, caption__batch_size=24, run__gpus_per_worker=0.5
    )
    stages = {s.name: s for s in build_stages(config, ["person"])}
    assert {name: s.batch_size for name, s in stages.items()} == {
        "decode": 64, "caption": 24, "parse": config.parse.batch_size, "tag": 256
    }
    # a model stage declares a device, whatever share of one a flat worker gets (run.gpus_per_worker)
    assert stages["caption"].resources == Resources(cpus=1.0, gpus=1.0)
    assert stages["parse"].resources == Resources(cpus=1.0, gpus=0.0)
    assert worker_resources(config) == Resources(cpus=1.0, gpus=1.0)
    assert worker_resources(tiny_run_config(paths, tmp_path / "out")) == Resources(cpus=1.0, gpus=0.0)
    assert all(s.matcher is None for s in stages.values() if s.name == "tag")  # nothing loaded yet


def test_decode_teardown_shuts_its_thread_pool(tmp_path):
    paths = make_coco(tmp_path / "data", n_images=1)
    decode = build_stages(tiny_run_config(paths, tmp_path / "out"), ["person"])[0]
    decode.setup()
    pool = decode._pool
    decode.teardown()
    assert pool._shutdown and decode._pool is None
