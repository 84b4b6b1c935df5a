"""The driver's attempt policy on its own: retries to the back, budgets, time limits, the report."""

import json
from collections import Counter

import pytest

from sgpipe.config import build_config
from sgpipe.errors import ConfigError
from sgpipe.output.failed_shards import failed_shards_path, read_failed_shards, write_failed_shards
from sgpipe.output.finalize import finalize_outputs
from sgpipe.run.attempts import (
    FIRST_SHARDS_TIMEOUT_S,
    MIN_TIMEOUT_S,
    AttemptBook,
    end_paragraph,
    shard_timeout,
)
from tests.helpers.schemas import validate
from tests.helpers.tiny_shards import make_output


def test_a_set_time_limit_wins_else_it_follows_the_shards_done():
    assert shard_timeout(42.0, None) == 42.0 and shard_timeout(42.0, 1000.0) == 42.0
    assert shard_timeout(0.0, None) == FIRST_SHARDS_TIMEOUT_S  # first shards also load the models
    assert shard_timeout(0.0, 2.0) == MIN_TIMEOUT_S
    assert shard_timeout(0.0, 600.0) == 3000.0  # 5x the slowest shard done


def test_a_failed_attempt_goes_to_the_back_and_the_budget_is_per_shard():
    book = AttemptBook([0, 1, 2], max_attempts=2)
    assert book.start_next() == (0, {"count": 1, "workers_lost": 0, "timed_out": 0})
    assert book.attempt_failed(0, "ActorDiedError: its worker died", worker_lost=True)
    assert list(book.pending) == [1, 2, 0]
    assert book.start_next()[0] == 1
    assert book.attempt_failed(1, "running for more than 9 s", worker_lost=True, timed_out=True)
    assert book.start_next()[0] == 2
    book.done(2, 3.5)
    index, counts = book.start_next()
    assert (index, counts) == (0, {"count": 2, "workers_lost": 1, "timed_out": 0})
    assert not book.attempt_failed(0, "ActorDiedError: again", worker_lost=True)  # budget spent
    assert book.failed[0].counts() == {"count": 2, "workers_lost": 2, "timed_out": 0}
    assert book.failed[0].errors == ["ActorDiedError: its worker died", "ActorDiedError: again"]
    index, counts = book.start_next()
    assert (index, counts) == (1, {"count": 2, "workers_lost": 0, "timed_out": 1})
    book.done(1, 1.0)
    assert book.start_next() is None and book.slowest_done_s == 3.5
    assert list(book.failed) == [0]


def test_a_worker_never_placed_costs_its_shard_no_attempt():
    book = AttemptBook([4, 5], max_attempts=1)
    index, _ = book.start_next()
    book.not_started(index)
    assert list(book.pending) == [4, 5]
    assert book.start_next() == (4, {"count": 1, "workers_lost": 0, "timed_out": 0})


def test_the_end_paragraph_is_one_line_with_the_first_failures_and_the_list(tmp_path):
    book = AttemptBook(range(6), max_attempts=1)
    for _ in range(5):
        index, _ = book.start_next()
        book.attempt_failed(index, f"ActorDiedError: shard {index}", worker_lost=True)
    path = write_failed_shards(tmp_path, "stopped", book.failed, {i: 4 for i in range(6)}, [5])
    text = end_paragraph(
        "Stopped by SIGINT",
        shards_total=9,
        shards_complete=3,
        statuses=Counter({"ok": 10, "failed_missing": 2}),
        failed=book.failed,
        unfinished=1,
        list_path=path,
        advice="Rerun the same command to resume.",
    )
    assert "\n" not in text
    assert text.startswith("Stopped by SIGINT. Shards: 3 of 9 complete, 5 failed, 1 not written.")
    assert "Images in complete shards: failed_missing 2, ok 10." in text
    assert "00000 after 1 attempt (ActorDiedError: shard 0); 00001" in text and "00003" not in text
    assert "and 2 more" in text and f"Full list: {failed_shards_path(tmp_path)}." in text
    listing = json.loads(path.read_text())
    assert [f["shard"] for f in listing["failed"]] == ["00000", "00001", "00002", "00003", "00004"]
    assert listing["failed"][0] == {
        "shard": "00000",
        "images": 4,
        "count": 1,
        "workers_lost": 1,
        "timed_out": 0,
        "errors": ["ActorDiedError: shard 0"],
    }
    assert listing["unfinished"] == ["00005"]
    assert len(read_failed_shards(tmp_path)) == 5
    assert write_failed_shards(tmp_path, "", {}, {}, []) is None  # a run that wrote everything
    assert not path.exists() and read_failed_shards(tmp_path) == []


def test_retry_counts_reach_stats_json(tmp_path):
    make_output(tmp_path, n_images=3, per_shard=2, failed=0)
    shard = json.loads((tmp_path / "00000_stats.json").read_text())
    shard["retries"] = {
        "attempts": {"count": 3, "workers_lost": 1, "timed_out": 1},
        "batch_splits": {"caption": 2, "parse": 0},
    }
    validate(shard, "shard_stats")
    (tmp_path / "00000_stats.json").write_text(json.dumps(shard))
    book = AttemptBook([7], max_attempts=1)
    book.start_next()
    book.attempt_failed(7, "ActorDiedError: poison", worker_lost=True)
    write_failed_shards(tmp_path, "failed", book.failed, {7: 2}, [])
    stats = finalize_outputs(tmp_path, "t")
    validate(stats, "stats")
    assert stats["retries"] == {
        "shard_attempts": 3 + 1 + 1,  # shard 1 (written before the counts existed) had one
        "shards_retried": 1,
        "failed_shards": 1,
        "workers_replaced": 1 + 1 + 1,  # a lost worker, a timed-out one, the poison's
        "timed_out": 1,
        "devices_lost": 0,
        "batch_splits": {"caption": 2, "parse": 0},
    }


@pytest.mark.parametrize(
    "setting, problem",
    [
        ("run.shard_attempts=0", "run.shard_attempts: 0 must be >= 1"),
        ("run.shard_timeout_s=-1", "run.shard_timeout_s: -1.0 must be >= 0"),
        ("run.placement_timeout_s=0", "run.placement_timeout_s: 0.0 must be >= 1"),
    ],
)
def test_attempt_settings_are_checked(tmp_path, setting, problem):
    raw = {"source": {"instances": "x.json", "images": "x", "captions": "c.json"}, "output": {"dir": "o"}}
    with pytest.raises(ConfigError) as caught:
        build_config(raw, [setting])
    assert problem in str(caught.value)


def test_the_cli_exits_with_each_stops_own_code():
    """One mechanism for every command: `user_errors` prints one line and exits with the error's
    `exit_code` (2 by default, 128 + the signal for an interrupt); an unhandled Ctrl-C in `run` is 130."""
    import typer
    from typer.testing import CliRunner

    from sgpipe.cli_support import user_errors
    from sgpipe.errors import Interrupted, ShardsFailed

    raised = {"term": Interrupted("Stopped by SIGTERM", 15), "failed": ShardsFailed("1 shard failed")}
    app = typer.Typer()

    @app.command()
    @user_errors(on_interrupt="interrupted: rerun to resume")
    def stop(kind: str) -> None:
        if kind == "ctrl-c":
            raise KeyboardInterrupt
        if kind == "bug":
            raise RuntimeError("a bug keeps its traceback")
        raise raised[kind]

    runner = CliRunner()
    term = runner.invoke(app, ["term"])
    assert term.exit_code == 143 and "error: Stopped by SIGTERM" in term.output
    failed = runner.invoke(app, ["failed"])
    assert failed.exit_code == 2 and "error: 1 shard failed" in failed.output
    ctrl_c = runner.invoke(app, ["ctrl-c"])
    assert ctrl_c.exit_code == 130 and "interrupted: rerun to resume" in ctrl_c.output
    bug = runner.invoke(app, ["bug"])
    assert isinstance(bug.exception, RuntimeError)
