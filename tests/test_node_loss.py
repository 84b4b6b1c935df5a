"""A two-node local Ray cluster loses a node mid-run: its worker's shard is redone by the other.

A module of its own: it needs its own Ray (a `ray.cluster_utils.Cluster`), not the 2-CPU local one."""

import json
import threading
import time

import pytest

from sgpipe.run import RunOptions, run_pipeline
from tests.helpers.coco_fixture import make_coco
from tests.helpers.outputs import shard_bytes
from tests.helpers.runs import stages_that_show_in_flight_pids, stages_with_a_pause, tiny_run_config


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    doomed = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster, doomed
    ray.shutdown()
    cluster.shutdown()


def test_losing_a_node_mid_run_loses_no_shard(cluster, tmp_path, caplog):
    cluster, doomed = cluster
    paths = make_coco(tmp_path / "coco", n_images=8)

    def config(out):
        return tiny_run_config(
            paths,
            out,
            output__samples_per_shard=1,
            run__executor="ray",
            run__workers=2,
            run__cpus_per_worker=1,
        )

    reference = tmp_path / "reference"
    run_pipeline(config(reference), RunOptions(progress=False), stage_factory=stages_with_a_pause)
    out = tmp_path / "out"
    outcome = {}

    def run():
        try:
            outcome["summary"] = run_pipeline(
                config(out), RunOptions(progress=False), stage_factory=stages_that_show_in_flight_pids
            )
        except Exception as error:  # noqa: BLE001 - reported below
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    # both workers mid-shard (a second before either can commit), so the doomed node's worker surely
    # holds a shard: one lost just after committing its shard would leave nothing to redo
    in_flight = tmp_path / "in_flight"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (
        len(list(out.glob("*_stats.json"))) >= 2 and len(list(in_flight.glob("*"))) == 2
    ):
        time.sleep(0.01)
    assert 2 <= len(list(out.glob("*_stats.json"))) < 8, "the node is lost mid-run"
    cluster.remove_node(doomed)  # one worker per node (1 CPU each): one of the two goes with it
    thread.join(timeout=600)
    assert "error" not in outcome, outcome.get("error")
    assert shard_bytes(out) == shard_bytes(reference)
    retries = json.loads((out / "stats.json").read_text())["retries"]
    assert retries["workers_replaced"] == 1 and retries["failed_shards"] == 0
    # no room for a replacement on the node left: the pool went on with one worker, never waiting
    assert "the cluster no longer holds 2 workers: going on with 1" in caplog.text
