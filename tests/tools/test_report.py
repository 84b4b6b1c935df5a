import json
import re
import shutil
import subprocess

import pytest
from PIL import Image

from sgpipe.tools.report import build_report, write_report
from tests.helpers.tiny_shards import make_output

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",
]
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)


def _chromium(tmp_path, *args):
    result = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture
def report(tmp_path):
    make_output(tmp_path / "out", n_images=5, per_shard=2)
    (tmp_path / "out" / "run.json").write_text(
        json.dumps(
            {
                "dataset": {"name": "t", "licence_note": "made in a test"},
                "config_hash": "abc123",
                "started": "2026-01-01T00:00:00+00:00",
                "ended": "2026-01-01T00:00:10+00:00",
            }
        )
    )
    path = tmp_path / "report.html"
    summary = write_report(tmp_path / "out", path, n_samples=3)
    assert str(path) in summary
    return path


def test_report_is_self_contained_with_gallery_plots_and_tables(report):
    page = report.read_text()
    assert "http://" not in page and "https://" not in page and 'src="file' not in page
    gallery = re.search(r'<div class="gallery" id="gallery">(.*?)</div>', page, re.S).group(1)
    assert gallery.count("<figure>") == 3 and "t-000000000001" in gallery
    assert "person -ride-&gt; bicycle 0.80" in gallery
    assert page.count('src="data:image/png;base64,') == 3 + 4  # gallery + status/predicates/categories/hist
    assert "made in a test" in page and "abc123" in page and "failed_missing" in page


def test_report_without_run_json_or_shard_images(tmp_path):
    make_output(tmp_path, n_images=2, per_shard=2, images=False, failed=0)
    page = build_report(tmp_path, n_samples=5)
    assert "No run.json" in page and page.count("<figure>") == 2


@needs_chromium
def test_report_renders_in_headless_chromium(report, tmp_path):
    dom = _chromium(tmp_path, "--dump-dom", report.as_uri())
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-images-loaded="true"' in body and 'data-image-count="7"' in body
    assert 'id="gallery"' in dom and dom.count("<figure>") == 3
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri())
    with Image.open(shot) as image:
        grey = image.convert("L")
        assert len(grey.getcolors(maxcolors=1 << 16)) > 20  # text, plots and renders, not a blank page
        assert grey.getextrema()[0] < 100


@needs_chromium
def test_a_broken_image_is_detected(report, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text(report.read_text().replace("base64,", "base64,AAAA", 1))
    dom = _chromium(tmp_path, "--dump-dom", broken.as_uri())
    assert 'data-images-loaded="false"' in re.search(r"<body[^>]*>", dom).group(0)
