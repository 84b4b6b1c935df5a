"""The same shards whatever runs them: in this process (local), on Ray's flat pool, or in device pools
(device actors holding the model stages, serving shard actors), with the captioner and the verifier
(tiny models on CPU: the pools' devices are logical here). And the pools' own guarantees: at most
two chunks of a shard in flight, a device actor's death costing only attempts, the split planned
from the recipe's table and the cluster."""

import json
import os
import pickle
import signal
import threading
import time

import pytest

from sgpipe.errors import SgpipeError
from sgpipe.run import run_pipeline
from sgpipe.run.executors.ray.actors import SAMPLE_FIELDS
from sgpipe.run.layout import plan_layout
from sgpipe.run.processor import MAX_CHUNKS_IN_FLIGHT
from sgpipe.synth.world import generate_world
from tests.helpers.coco_fixture import make_coco, make_coco_with_bad_images
from tests.helpers.outputs import shard_bytes
from tests.helpers.ray_local import local_ray as start_local_ray
from tests.helpers.runs import (
    QUIET,
    our_worker_pids,
    planned_processor,
    stages_with_a_slow_device,
    tiny_run_config,
)

POOLS = {"run__executor": "ray", "run__layout": "pools", "run__devices": 1, "run__workers": 2}
FLAT = {"run__executor": "ray", "run__layout": "flat", "run__workers": 2}
LOCAL = {"run__executor": "local"}


@pytest.fixture(scope="module")
def ray4():
    """A local Ray with 4 logical CPUs: a device actor (2, as its two model stages declare) and two
    shard actors of 1."""
    with start_local_ray(num_cpus=4) as ray:
        yield ray


def model_config(paths, out, blip, verifier, **overrides):
    """Captions from the file and from a tiny BLIP, the tiny verifier storing every candidate."""
    return tiny_run_config(
        paths,
        out,
        caption__enabled=True,
        caption__model=blip,
        caption__captions_per_image=2,
        caption__max_length=8,
        caption__min_length=2,
        verify__enabled=True,
        verify__checkpoint=verifier,
        verify__store_threshold=0.0,
        **overrides,
    )


class InProcessDevice:
    """A `DeviceLink` in this process: a chunk handed over is pickled, as to a device actor, and
    run through its stage only when waited for, so the processor really has chunks in flight."""

    def __init__(self, stages):
        self.stages = {stage.name: stage for stage in stages}
        self.stage_names = tuple(self.stages)
        self.in_flight: list = []
        self.most_in_flight = 0
        self.submitted: list = []

    def submit(self, stage, samples):
        pending = (stage, pickle.dumps([_without_bytes(s) for s in samples]))
        self.submitted.append((stage, [s.key for s in samples]))
        self.in_flight.append(pending)
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        return pending

    def wait_any(self, pending):
        return pending[-1]  # the newest first: the processor must not depend on the order

    def collect(self, pending, samples):
        self.in_flight.remove(pending)
        stage, data = pending
        results = pickle.loads(data)
        seconds, splits = self.stages[stage].run_counted(results)
        for sample, result in zip(samples, results, strict=True):
            for name in SAMPLE_FIELDS:
                setattr(sample, name, getattr(result, name))
        return seconds, splits

    def describe(self, stage):
        return self.stages[stage].describe()

    def release(self, samples):
        pass  # holds nothing of a chunk once collected


def _without_bytes(sample):
    import copy

    light = copy.copy(sample)
    light.image_bytes = None
    return light


def test_chunks_handed_to_a_device_give_the_bytes_of_chunks_run_in_place(tmp_path, tiny_blip, tiny_verifier):
    """A shard of three chunks (64 + 64 + 2 images): with its model stages on a device, two chunks are
    in flight at once, never more, and the shard's bytes are those of the processor alone."""
    paths = make_coco(tmp_path / "coco", n_images=130, width=16, height=12)
    outputs = {}
    for name in ("in_place", "device"):
        config = model_config(paths, tmp_path / name, tiny_blip, tiny_verifier, output__samples_per_shard=130)
        device = None
        if name == "device":
            from sgpipe.pipeline import build_stages

            device = InProcessDevice(
                build_stages(config, ["person", "dog", "bicycle"], ("caption", "verify"))
            )
            for stage in device.stages.values():
                stage.setup()
        stats = planned_processor(config, device=device).process_shard(0)
        outputs[name] = shard_bytes(tmp_path / name)
        assert stats["count"] == 130 and set(stats["timings"]["stages"]) == {
            "decode",
            "caption",
            "parse",
            "tag",
            "verify",
        }
    assert device.most_in_flight == MAX_CHUNKS_IN_FLIGHT == 2
    assert outputs["device"] == outputs["in_place"]


def test_two_shards_of_a_shard_actor_share_its_two_chunk_slots_oldest_first(
    tmp_path, tiny_blip, tiny_verifier
):
    """Two shards given at once to one processor (a shard actor's two threads, as the driver starts
    it): never more than two chunks in flight between them, one shard starts all its chunks before
    the other starts any (so they do not finish, and leave the device, together), and each shard's
    bytes are those it has alone."""
    from sgpipe.pipeline import build_stages

    paths = make_coco(tmp_path / "coco", n_images=260, width=16, height=12)
    alone = model_config(paths, tmp_path / "alone", tiny_blip, tiny_verifier, output__samples_per_shard=130)
    for index in (0, 1):
        planned_processor(alone).process_shard(index)
    config = model_config(paths, tmp_path / "two", tiny_blip, tiny_verifier, output__samples_per_shard=130)
    device = InProcessDevice(build_stages(config, ["person", "dog", "bicycle"], ("caption", "verify")))
    for stage in device.stages.values():
        stage.setup()
    processor = planned_processor(config, device=device)
    threads = [threading.Thread(target=processor.process_shard, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert device.most_in_flight == MAX_CHUNKS_IN_FLIGHT
    # image ids 10..1300 are shard 0's: the caption calls go shard by shard, three chunks each
    shards = [int(keys[0].rsplit("-", 1)[1]) > 1300 for stage, keys in device.submitted if stage == "caption"]
    assert shards in ([False] * 3 + [True] * 3, [True] * 3 + [False] * 3)
    assert shard_bytes(tmp_path / "two") == shard_bytes(tmp_path / "alone")


@pytest.mark.parametrize("fixture", ["coco", pytest.param("synthetic_world", marks=pytest.mark.slow)])
def test_local_flat_ray_and_device_pools_write_the_same_bytes(
    tmp_path, tiny_blip, tiny_verifier, ray4, fixture
):
    if fixture == "coco":
        paths = make_coco_with_bad_images(tmp_path / "data")
        shard = 2
    else:
        world = tmp_path / "world"
        generate_world(world, n_images=12, seed=3, image_size=128)
        paths = {
            "instances": world / "annotations/instances.json",
            "images": world / "images",
            "captions": world / "annotations/captions.json",
        }
        shard = 3
    outputs = {}
    for name, layout in (("local", LOCAL), ("flat", FLAT), ("pools", POOLS)):
        out = tmp_path / name
        config = model_config(paths, out, tiny_blip, tiny_verifier, output__samples_per_shard=shard, **layout)
        run_pipeline(config, QUIET)
        outputs[name] = shard_bytes(out)
        records = json.loads((out / "stats.json").read_text())
        assert records["totals"]["n_relations"] > 0, "the verifier scored candidates"
    assert outputs["pools"] == outputs["local"] and outputs["flat"] == outputs["local"]


def test_the_detect_stage_on_a_device_actor_writes_the_bytes_of_a_local_run(tmp_path, tiny_verifier, ray4, caplog):
    """A photo folder (alt texts as captions) with the detect stage (a tiny OWLv2) and the verifier on
    the device actor: the boxes found there and the relations scored on them are a local run's."""
    import logging

    from sgpipe.config import build_config
    from tests.helpers.tiny_detectors import build_tiny_owlv2
    from tests.helpers.web_fixture import make_image_folder

    root = make_image_folder(tmp_path / "photos")
    owl = build_tiny_owlv2(tmp_path / "owl")
    caplog.set_level(logging.INFO, logger="sgpipe.run.executors.ray")
    outputs = {}
    for name, layout in (("local", LOCAL), ("pools", POOLS)):
        out = tmp_path / name
        overrides = {
            "output.samples_per_shard": 2, "tag.embedding_model": "none", "run.max_error_rate": 0.5,
            "detect.enabled": True, "detect.model": owl, "detect.box_threshold": 0.1,
            "verify.enabled": True, "verify.checkpoint": tiny_verifier, "verify.store_threshold": 0.0,
            **{key.replace("__", "."): value for key, value in layout.items()},
        }
        config = build_config(
            {"source": {"kind": "folder", "name": "mine", "images": str(root)}, "output": {"dir": str(out)}},
            [f"{key}={value}" for key, value in overrides.items()],
        )
        run_pipeline(config, QUIET)
        outputs[name] = shard_bytes(out)
        totals = json.loads((out / "stats.json").read_text())["totals"]
        assert totals["n_relations"] > 0, "relations were scored on detected boxes"
    assert "CPUs each: detect, verify) serving" in caplog.text  # the detector sat on the device actor
    assert outputs["pools"] == outputs["local"]


ATTEMPTS = 3  # run.shard_attempts' default
KILLS = 2 * ATTEMPTS + 2


def test_device_actor_deaths_past_every_budget_cost_attempts_and_lose_no_shard(
    tmp_path, tiny_blip, ray4, caplog
):
    """2 x run.shard_attempts + 2 SIGKILLs of the device actor in one run: each death costs the shards
    sending it chunks an attempt (at most two per shard actor; the shard actors stay), the device is
    replaced, and every shard is written with the bytes of an undisturbed run."""
    paths = make_coco(tmp_path / "coco", n_images=48)

    def config(out, **layout):
        return tiny_run_config(
            paths, out, caption__enabled=True, caption__model=tiny_blip, output__samples_per_shard=1, **layout
        )

    reference = tmp_path / "reference"
    run_pipeline(config(reference), QUIET, stage_factory=stages_with_a_slow_device)
    out = tmp_path / "out"
    busy = tmp_path / "busy"
    outcome = {}

    def run():
        try:
            run_pipeline(config(out, **POOLS), QUIET, stage_factory=stages_with_a_slow_device)
        except Exception as error:  # noqa: BLE001 - reported below
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    kills, deadline = [], time.monotonic() + 600
    # one kill at a time, of a device actor that has served a chunk, four more shards done each time (a
    # death costs up to four shards an attempt, which go to the back of the queue)
    while thread.is_alive() and len(kills) < KILLS and time.monotonic() < deadline:
        served = {int(p.name) for p in busy.glob("*")} if busy.exists() else set()
        devices = [pid for pid in our_worker_pids("DeviceWorker") if pid in served and pid not in kills]
        if devices and len(list(out.glob("*_stats.json"))) >= 4 * (len(kills) + 1):
            os.kill(devices[0], signal.SIGKILL)
            kills.append(devices[0])
        time.sleep(0.02)
    thread.join(timeout=600)
    assert len(kills) == KILLS, "the run outlasted the kills"
    assert "error" not in outcome, outcome.get("error")
    assert shard_bytes(out) == shard_bytes(reference)
    retries = json.loads((out / "stats.json").read_text())["retries"]
    assert retries["failed_shards"] == 0 and retries["workers_replaced"] == 0  # the shard actors stayed
    assert 1 <= retries["devices_lost"] <= 4 * KILLS  # at most two shards per shard actor per death
    assert (
        len([r for r in caplog.records if "device actor" in r.getMessage() and "replaced" in r.getMessage()])
        == KILLS
    )
    for path in out.glob("*_stats.json"):
        assert json.loads(path.read_text())["retries"]["attempts"]["count"] <= ATTEMPTS


@pytest.mark.slow
def test_a_frozen_device_actor_is_found_by_its_shards_time_limit_and_replaced(
    tmp_path, tiny_blip, ray4, monkeypatch, caplog
):
    """SIGSTOP of the device actor: its shards pass run.shard_timeout_s, the device does not answer
    `alive` either, so it is killed and replaced with the shard actors; every shard is written."""
    from sgpipe.run.executors.ray import scheduler

    monkeypatch.setattr(scheduler, "ALIVE_S", 3.0)
    paths = make_coco(tmp_path / "coco", n_images=8)
    settings = {"caption__enabled": True, "caption__model": tiny_blip, "output__samples_per_shard": 1}
    reference = tmp_path / "reference"
    run_pipeline(
        tiny_run_config(paths, reference, **settings), QUIET, stage_factory=stages_with_a_slow_device
    )
    out = tmp_path / "out"
    config = tiny_run_config(paths, out, run__shard_timeout_s=15, **settings, **POOLS)
    outcome = {}

    def run():
        try:
            run_pipeline(config, QUIET, stage_factory=stages_with_a_slow_device)
        except Exception as error:  # noqa: BLE001 - reported below
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (len(list(out.glob("*_stats.json"))) >= 2):
        time.sleep(0.02)
    (frozen,) = our_worker_pids("DeviceWorker")
    os.kill(frozen, signal.SIGSTOP)
    try:
        thread.join(timeout=600)
        assert "error" not in outcome, outcome.get("error")
        assert shard_bytes(out) == shard_bytes(reference)
        assert (
            f"device actor pid {frozen}" in caplog.text and "does not answer: killed; replaced" in caplog.text
        )
        assert json.loads((out / "stats.json").read_text())["retries"]["failed_shards"] == 0
    finally:
        if os.path.exists(f"/proc/{frozen}"):
            os.kill(frozen, signal.SIGKILL)


def test_the_split_comes_from_the_recipes_table_and_the_cluster(tmp_path, tiny_blip, tiny_verifier):
    paths = make_coco(tmp_path / "coco", n_images=1)
    config = model_config(
        paths, tmp_path / "o", tiny_blip, tiny_verifier, run__cpus_per_worker=4, run__workers=0
    )
    node = {"CPU": 16.0, "GPU": 1.0}
    pools = plan_layout(config, node, n_todo=100)  # auto: a model stage on a cluster with GPUs
    assert (pools.kind, pools.devices, pools.workers) == ("pools", 1, 3)
    assert (pools.device.gpus, pools.device.cpus, pools.worker.cpus) == (1.0, 2.0, 4.0)
    assert pools.describe() == (
        "layout: pools (Ray): 1 device actors (1 GPU, 2 CPUs each: caption, verify) serving 3 shard actors "
        "(4 CPUs each: decode, parse, tag, write)"
    )
    # a reverify runs the verify stage alone: its device actor holds the verifier, not the captioner
    rescoring = plan_layout(config, node, n_todo=100, names=("verify",))
    assert (rescoring.device_stages, rescoring.device.cpus, rescoring.host_stages) == (("verify",), 1.0, ())
    assert rescoring.describe().endswith("(1 GPU, 1 CPUs each: verify) serving 3 shard actors (4 CPUs each: write)")
    eight = plan_layout(config, {"CPU": 128.0, "GPU": 8.0}, n_todo=1000)
    assert (eight.devices, eight.workers) == (8, 28)
    assert plan_layout(config, {"CPU": 16.0}, n_todo=100).kind == "flat"  # no GPU: flat, unless asked
    # a machine smaller than the recipe asks: one error before any work, naming the keys that fix it
    with pytest.raises(SgpipeError, match=r"no shard actor fits: 1 device actors take 2 of 5 CPUs and each "
                                          r"shard actor needs run.cpus_per_worker=4 \(lower it or run.devices\)"):
        plan_layout(config, {"CPU": 5.0, "GPU": 1.0}, n_todo=100)
    # asked for on a cluster without GPUs: logical devices holding the models on CPUs
    asked = model_config(
        paths, tmp_path / "o", tiny_blip, tiny_verifier, run__layout="pools", run__devices=2, run__workers=0
    )
    cpu_pools = plan_layout(asked, {"CPU": 8.0}, n_todo=100)
    assert (cpu_pools.devices, cpu_pools.device.gpus, cpu_pools.workers) == (2, 0.0, 4)  # 2 x 2 + 4 x 1
    no_models = tiny_run_config(paths, tmp_path / "o", run__layout="pools")
    with pytest.raises(Exception, match="no model stage for a device actor"):
        plan_layout(no_models, node, n_todo=10)


def test_the_dry_run_prints_the_split(tmp_path, tiny_blip, tiny_verifier, monkeypatch):
    from sgpipe.run import layout

    paths = make_coco(tmp_path / "coco", n_images=4)
    config = model_config(
        paths, tmp_path / "o", tiny_blip, tiny_verifier, run__workers=0, run__cpus_per_worker=4
    )
    monkeypatch.setattr(layout.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(layout, "local_gpu_count", lambda: 1)
    from sgpipe.run import RunOptions

    text = run_pipeline(config, RunOptions(dry_run=True, progress=False))
    assert "layout: pools (Ray): 1 device actors (1 GPU, 2 CPUs each: caption, verify) serving" in text
    assert "resources: " in text and "time estimate:" in text
