"""End to end: plan -> decode -> parse -> tag -> shards, resume and refusals, in this process (the
local executor) unless a test says Ray."""

import json
import os
import signal
import time

import pyarrow.parquet as pq
import pytest
import webdataset as wds

from sgpipe.errors import ConfigMismatchError, ErrorRateExceeded, OutputLockedError, SgpipeError
from sgpipe.output.guards import OutputLock
from sgpipe.run import run_pipeline
from sgpipe.run.layout import placeable_workers
from tests.helpers.cli_runs import kill_after_shards, start_run, write_recipe
from tests.helpers.coco_fixture import make_coco_with_bad_images
from tests.helpers.outputs import complete_shards, shard_bytes
from tests.helpers.runs import (
    MARKER_CAPTION,
    QUIET,
    our_worker_pids,
    stages_with_a_marker,
    tiny_run_config,
    with_tiny_models,
)
from tests.helpers.schemas import validate


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_coco_with_bad_images(tmp_path_factory.mktemp("coco"))


@pytest.fixture(scope="module")
def finished(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    summary = run_pipeline(tiny_run_config(dataset, out), QUIET)
    return out, summary


def test_every_entry_gets_one_status_row(finished):
    out, summary = finished
    rows = pq.read_table(sorted(out.glob("*.parquet"))).to_pylist()
    assert [r["image_id"] for r in rows] == [10, 20, 30, 40, 50]
    statuses = {r["image_id"]: r["status"] for r in rows}
    assert statuses == {10: "ok", 20: "ok", 30: "failed_decode", 40: "failed_missing", 50: "ok"}
    assert "no file" in next(r for r in rows if r["image_id"] == 40)["error_message"]
    assert "5 images" in summary


def test_shards_read_back_with_webdataset_and_match_the_schemas(finished):
    out, _ = finished
    samples = list(wds.WebDataset(str(out / "{00000..00002}.tar"), shardshuffle=False))
    assert [s["__key__"] for s in samples] == ["t-000000000010", "t-000000000020", "t-000000000050"]
    for sample in samples:
        record = json.loads(sample["json"])
        validate(record, "scene_graph")
        assert sample["jpg"][:2] == b"\xff\xd8"
        assert record["triplets"], "captions of the fixture state relations"
        assert record["relations"] and all(r["confidence"] is None for r in record["relations"])
    for name, schema in (("run.json", "run"), ("stats.json", "stats"), ("shardindex.json", "shardindex")):
        validate(json.loads((out / name).read_text()), schema)
    for path in out.glob("*_stats.json"):
        validate(json.loads(path.read_text()), "shard_stats")
    stats = json.loads((out / "stats.json").read_text())
    assert stats["status"] == {"failed_decode": 1, "failed_missing": 1, "ok": 3}
    assert stats["counters"]["resolved_direct"] == 4


def test_rerun_is_a_no_op(finished, dataset):
    out, _ = finished
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix in (".tar", ".parquet")}
    run_pipeline(tiny_run_config(dataset, out), QUIET)
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix in (".tar", ".parquet")}
    assert before == after
    assert json.loads((out / "run.json").read_text())["resumed"] == 1


def test_a_different_config_is_refused_without_force(finished, dataset):
    out, _ = finished
    with pytest.raises(ConfigMismatchError, match="--force"):
        run_pipeline(tiny_run_config(dataset, out, tag__max_pairs_per_triplet=1), QUIET)


def test_a_second_run_on_the_same_folder_is_refused(finished, dataset):
    out, _ = finished
    with OutputLock(out):
        with pytest.raises(OutputLockedError, match="in use"):
            run_pipeline(tiny_run_config(dataset, out), QUIET)


def test_wrong_images_folder_trips_the_error_rate(dataset, tmp_path):
    config = tiny_run_config(dataset, tmp_path / "out", source__images=str(tmp_path))
    with pytest.raises(ErrorRateExceeded, match="source.images"):
        run_pipeline(config, QUIET)


@pytest.mark.parametrize(
    "executor, shards_before_kill",
    [("local", 2), ("ray", 2)] + [pytest.param("local", k, marks=pytest.mark.slow) for k in (0, 1, 3)],
)
def test_sigkill_then_resume_gives_identical_shards(dataset, tmp_path, executor, shards_before_kill):
    def config(out, **run):
        return tiny_run_config(dataset, out, run__workers=1, output__samples_per_shard=1, **run)

    reference = tmp_path / "reference"
    run_pipeline(config(reference), QUIET)
    out = tmp_path / "killed"
    # each shard pauses, so the polling cannot miss the moment to kill, however busy the machine
    recipe = write_recipe(config(out, run__executor=executor), tmp_path / "recipe.yaml")
    process = start_run(recipe, factory="stages_with_a_pause")
    kill_after_shards(process, lambda: complete_shards(out), shards_before_kill, total=5)
    run_pipeline(config(out), QUIET)
    assert shard_bytes(out) == shard_bytes(reference)
    keys = [r["key"] for r in pq.read_table(sorted(out.glob("*.parquet"))).to_pylist()]
    assert len(keys) == len(set(keys)) == 5


def test_killing_a_worker_mid_run_retries_its_shard(dataset, tmp_path, local_ray):
    import threading

    reference = tmp_path / "reference"
    run_pipeline(tiny_run_config(dataset, reference, run__workers=1, output__samples_per_shard=1), QUIET)
    out = tmp_path / "out"
    outcome = {}

    def run():
        try:
            outcome["summary"] = run_pipeline(
                tiny_run_config(dataset, out, run__executor="ray", output__samples_per_shard=1), QUIET
            )
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "00000_stats.json").exists():
        time.sleep(0.02)
    pids = our_worker_pids()
    assert pids, "a worker process is running"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    thread.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    assert shard_bytes(out) == shard_bytes(reference)


def _recipe(dataset, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"source:\n  name: t\n  instances: {dataset['instances']}\n  images: {dataset['images']}\n"
        f"  captions: {dataset['captions']}\n"
        f"output:\n  dir: {tmp_path / 'out'}\n  samples_per_shard: 2\n"
        "tag:\n  embedding_model: none\nrun:\n  workers: 1\n"
    )
    return recipe


def test_cli_dry_run_trial_shards_and_metrics(dataset, tmp_path):
    from typer.testing import CliRunner

    from sgpipe.cli import app

    recipe = _recipe(dataset, tmp_path)
    runner = CliRunner()
    dry = runner.invoke(app, ["run", str(recipe), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "5 images in 3 shards" in dry.output and "parse -> tag" in dry.output
    assert "time estimate:" in dry.output and "images/s" in dry.output
    assert not list((tmp_path / "out").glob("*.tar"))

    metrics = tmp_path / "metrics.jsonl"
    trial = runner.invoke(
        app, ["run", str(recipe), "--shards", "1:2", "--no-progress", "--metrics", str(metrics)]
    )
    assert trial.exit_code == 0, trial.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tar")) == ["00001.tar"]
    line = json.loads(metrics.read_text().splitlines()[-1])
    assert line["shard"] == "00001" and line["shards_done"] == 1 and line["images"] == 2

    bad = runner.invoke(
        app, ["run", str(recipe), "--set", "output.samples_per_shard=zero", "--set", "run.wrkers=1"]
    )
    assert bad.exit_code == 2
    assert "output.samples_per_shard: expected int" in bad.output and "run.workers" in bad.output


def test_the_dry_run_names_the_stages_a_worker_builds(dataset, tmp_path):
    from sgpipe.pipeline import build_stages
    from sgpipe.run.layout import planned_layout
    from sgpipe.run.progress import describe_plan
    from sgpipe.source.plan import SourcePlan

    config = tiny_run_config(dataset, tmp_path / "o")
    config.caption.enabled = config.verify.enabled = True
    plan = SourcePlan("t", "pycocotools", ["cat"], [2, 1], {}, {})
    text = describe_plan(plan, [0, 1], config, planned_layout(config, 2))
    names = [stage.name for stage in build_stages(config, plan.categories)]
    assert names == ["decode", "caption", "parse", "tag", "verify"]
    assert f"stages: {' -> '.join(names)}; models: captioner " in text


def test_every_stage_end_to_end_with_tiny_models(dataset, tmp_path, tiny_blip, tiny_verifier):
    """caption (tiny BLIP) + file captions -> parse -> tag -> verify (tiny verifier) -> shards."""
    blip, checkpoint = tiny_blip, tiny_verifier
    run_pipeline(tiny_run_config(dataset, tmp_path / "out", **with_tiny_models(blip, checkpoint)), QUIET)
    records = [
        json.loads(s["json"])
        for s in wds.WebDataset(str(tmp_path / "out" / "{00000..00002}.tar"), shardshuffle=False)
    ]
    assert len(records) == 3
    for record in records:
        validate(record, "scene_graph")
        sources = [c["source"] for c in record["captions"]]
        assert sources.count("model") == 2 and sources.count("annotation") == 3
        model_caption = next(c for c in record["captions"] if c["source"] == "model")
        assert model_caption["model"] == str(blip) and model_caption["decoding"]["top_p"] == 0.9
        assert record["relations"], "file captions give candidates"
        for relation in record["relations"]:
            assert 0.0 <= relation["confidence"] <= 1.0
            assert relation["kept"] == (relation["confidence"] >= 0.2)
        assert set(record["provenance"]["models"]) >= {"caption", "verify"}
        assert record["provenance"]["models"]["caption"]["engine"] == "fast"
    rows = {r["key"]: r for r in pq.read_table(sorted((tmp_path / "out").glob("*.parquet"))).to_pylist()}
    for record in records:
        row = rows[record["key"]]
        assert row["n_candidates"] == len(record["relations"])  # store threshold 0: every candidate stored
        assert row["n_kept"] == sum(r["kept"] for r in record["relations"])
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["models"]["captioner"] == str(blip) and run["thresholds"] == {"store": 0.0, "keep": 0.2}


def test_resume_from_every_state_a_kill_can_leave(dataset, tmp_path):
    """The on-disk states a SIGKILL leaves mid-write and mid-finalisation, made exactly, then resumed."""
    import shutil

    reference = tmp_path / "reference"
    run_pipeline(tiny_run_config(dataset, reference, run__workers=1, output__samples_per_shard=1), QUIET)
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    # shard 0: killed while streaming its tar (a temporary file only)
    tar0 = (out / "00000.tar").read_bytes()
    for name in ("00000.tar", "00000.parquet", "00000_stats.json"):
        (out / name).unlink()
    (out / ".00000.tar.tmp4242").write_bytes(tar0[: len(tar0) // 2])
    # shard 1: killed after the tar's rename, before the parquet
    (out / "00001.parquet").unlink()
    (out / "00001_stats.json").unlink()
    # shard 2: killed before the completion marker
    (out / "00002_stats.json").unlink()
    # finalisation: killed before the run-level files were rebuilt
    (out / "stats.json").unlink()
    (out / "shardindex.json").write_text("{")  # a torn index must not matter
    run_json = json.loads((out / "run.json").read_text())
    run_json["ended"] = None
    (out / "run.json").write_text(json.dumps(run_json))

    run_pipeline(tiny_run_config(dataset, out, run__workers=1, output__samples_per_shard=1), QUIET)
    assert shard_bytes(out) == shard_bytes(reference)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".0")]
    assert json.loads((out / "shardindex.json").read_text()) == json.loads(
        (reference / "shardindex.json").read_text()
    )
    assert json.loads((out / "run.json").read_text())["ended"] is not None


def test_a_stage_factory_replaces_the_recipes_stages(dataset, tmp_path):
    run_pipeline(tiny_run_config(dataset, tmp_path / "out"), QUIET, stage_factory=stages_with_a_marker)
    urls = sorted(str(p) for p in (tmp_path / "out").glob("*.tar"))
    samples = wds.WebDataset(urls, shardshuffle=False)
    records = [json.loads(s["json"]) for s in samples]
    assert len(records) == 3
    for record in records:
        assert record["captions"][-1]["text"] == MARKER_CAPTION
        assert any(t["predicate"] == "on" and t["object"] == "mat" for t in record["triplets"])


def test_workers_fit_the_gpus_as_well_as_the_cpus(dataset, tmp_path, caplog):
    def config(**run):
        # a model stage: flat workers ask for their GPU share only when a stage declares a GPU
        overrides = {f"run__{k}": v for k, v in run.items()}
        return tiny_run_config(dataset, tmp_path / "o", caption__enabled=True, **overrides)

    node = {"CPU": 16.0, "GPU": 1.0}
    assert placeable_workers(config(workers=0, cpus_per_worker=4), node) == 4
    assert placeable_workers(config(workers=0, cpus_per_worker=4, gpus_per_worker=1), node) == 1
    assert placeable_workers(config(workers=0, cpus_per_worker=4, gpus_per_worker=0.5), node) == 2
    assert placeable_workers(config(workers=0, cpus_per_worker=2, gpus_per_worker=1 / 3), node) == 3
    # more than the cluster holds, asked for explicitly: cut to what fits, never left waiting
    assert placeable_workers(config(workers=3, cpus_per_worker=4, gpus_per_worker=1), node) == 1
    assert "run.workers=3 but the cluster holds 1" in caplog.text
    # none fits: an error that says why, rather than an actor waiting forever
    with pytest.raises(SgpipeError, match="no worker fits: each needs run.cpus_per_worker=32 CPUs"):
        placeable_workers(config(workers=0, cpus_per_worker=32, gpus_per_worker=1), node)
    # no stage declares a GPU (captions from the file, the rule parser): no GPU asked for
    no_models = tiny_run_config(
        dataset, tmp_path / "o", run__workers=0, run__cpus_per_worker=4, run__gpus_per_worker=1
    )
    assert placeable_workers(no_models, node) == 4


def test_gpu_workers_without_gpus_fail_at_once_instead_of_waiting(dataset, tmp_path, tiny_blip, local_ray):
    # the module's Ray has 2 CPUs and no GPU: a GPU actor could never be placed
    config = tiny_run_config(
        dataset, tmp_path / "out", run__executor="ray", run__gpus_per_worker=1, run__layout="flat",
        caption__enabled=True, caption__model=tiny_blip,
    )  # fmt: skip
    with pytest.raises(SgpipeError, match="Ray sees no GPU"):
        run_pipeline(config, QUIET)


def test_a_dry_run_plans_whole_gpus(dataset, tmp_path, monkeypatch):
    from sgpipe.run import layout

    config = tiny_run_config(
        dataset, tmp_path / "o", run__workers=0, run__cpus_per_worker=0.25, run__gpus_per_worker=0.33,
        run__layout="flat", caption__enabled=True,
    )  # fmt: skip
    monkeypatch.setattr(layout.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(layout, "local_gpu_count", lambda: 0)  # a GPU recipe checked on a laptop
    planned = layout.planned_layout(config, 100)
    assert (planned.kind, planned.workers, planned.cpus, planned.gpus) == ("flat", 3, 0.75, 1)
    monkeypatch.setattr(layout, "local_gpu_count", lambda: 2)
    planned = layout.planned_layout(config, 100)
    assert (planned.workers, planned.gpus) == (6, 2)
    assert layout.planned_layout(config, 4).gpus == 2  # 4 shards: 4 workers on 2 cards
