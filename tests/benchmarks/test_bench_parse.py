"""The parse benchmark's seq2seq path: F1 and captions/s from one run, here with the tiny taught T5."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.tiny_models import FACTUAL_PAIRS

ROOT = Path(__file__).resolve().parents[2]


def write_factual_split(path: Path, pairs: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image_id", "region_id", "caption", "scene_graph"])
        writer.writeheader()
        for i, (caption, graph) in enumerate(pairs):
            writer.writerow({"image_id": i, "region_id": i, "caption": caption, "scene_graph": graph})


def test_seq2seq_backend_reports_f1_and_speed(tmp_path, tiny_factual_t5):
    # gold: the taught graphs, except the cut-off one, whose gold is whole
    gold = [(c, g) for c, g in FACTUAL_PAIRS[:4]] + [
        (FACTUAL_PAIRS[4][0], "( person , stand behind , bicycle )")
    ]
    write_factual_split(tmp_path / "random_dev.csv", gold)
    write_factual_split(tmp_path / "length_dev.csv", gold[:2])
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_parse.py"),
        "--data",
        str(tmp_path),
        "--backend",
        "seq2seq",
        "--model",
        str(tiny_factual_t5),
        "--spacy-model",
        "en_core_web_sm",
        "--max-new-tokens",
        "40",
        "--batch-size",
        "4",
        "--json",
        str(tmp_path / "out.json"),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "out.json").read_text())
    # the model writes exactly the taught relations: every gold triplet found, nothing else
    assert report["quality"]["random_dev"]["seq2seq"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert report["quality"]["length_dev"]["n_captions"] == 2
    assert report["speed"]["captions"] == 7 and report["speed"]["captions_per_wall_s"] > 0
    assert report["generated"] == {"malformed_tuples": 1, "attributes": 4}
