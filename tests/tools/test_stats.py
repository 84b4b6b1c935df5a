import json

import pytest
from PIL import Image

from sgpipe.errors import SgpipeError
from sgpipe.tools.stats import show_stats
from tests.helpers.tiny_shards import make_output


def test_stats_prints_totals_statuses_histograms_and_throughput(tmp_path):
    make_output(tmp_path, n_images=5, per_shard=2, failed=1)
    (tmp_path / "run.json").write_text(
        json.dumps(
            {
                "dataset": {"name": "t"},
                "started": "2026-01-01T00:00:00+00:00",
                "ended": "2026-01-01T00:00:03+00:00",
            }
        )
    )
    text = show_stats(tmp_path)
    assert "shards: 3  images: 6  ok: 5  failed: 1" in text
    assert "relations: 8  kept: 4" in text
    assert "failed_missing         1" in text and "ok                     5" in text
    assert "ride                          4 / 4" in text and "next to                       4 / 0" in text
    assert "person                        5" in text
    assert "wall clock: 3 s, 2.00 images/s overall" in text
    assert "parse" in text and "tag" in text  # per-stage throughput from the shards' timings
    assert "retries: 0 shards retried (3 attempts), 0 failed; 0 workers replaced" in text


def test_stats_show_attempts_replaced_workers_and_batch_splits(tmp_path):
    make_output(tmp_path, n_images=3, per_shard=2, failed=0)
    shard = json.loads((tmp_path / "00001_stats.json").read_text())
    shard["retries"] = {
        "attempts": {"count": 3, "workers_lost": 1, "timed_out": 1},
        "batch_splits": {"caption": 4, "verify": 0},
    }
    (tmp_path / "00001_stats.json").write_text(json.dumps(shard))
    (tmp_path / "stats.json").unlink()  # summarised from the shards
    text = show_stats(tmp_path)
    assert (
        "retries: 1 shards retried (4 attempts), 0 failed; 2 workers replaced (1 after a time-out); "
        "batch splits: caption 4" in text
    )
    # the pools layout: an attempt lost with its device actor
    shard["retries"]["attempts"] |= {"count": 4, "devices_lost": 1}
    (tmp_path / "00001_stats.json").write_text(json.dumps(shard))
    assert "(1 after a time-out); 1 attempts lost with a device actor; batch splits" in show_stats(tmp_path)


def test_stats_without_stats_json_reads_shard_stats_and_writes_nothing(tmp_path):
    make_output(tmp_path, n_images=3, per_shard=2, failed=0)
    full = show_stats(tmp_path)
    (tmp_path / "stats.json").unlink()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert show_stats(tmp_path) == full
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_stats_plots_are_pngs(tmp_path):
    make_output(tmp_path / "out", n_images=3, per_shard=2)
    text = show_stats(tmp_path / "out", plots_dir=tmp_path / "plots")
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["categories.png", "predicates.png", "relations_per_image.png", "status.png"]
    for name in names:
        with Image.open(tmp_path / "plots" / name) as image:
            assert image.format == "PNG" and image.width > 100
            assert len(image.convert("L").getcolors(maxcolors=1 << 16)) > 2  # not blank
    assert "plots:" in text


def test_stats_of_a_folder_without_shards_is_an_error(tmp_path):
    with pytest.raises(SgpipeError, match="neither stats.json nor complete shards"):
        show_stats(tmp_path)
