"""A small deterministic corpus exported with `sgpipe export --format rlipv2` and laid out as RLIPv2's
loaders read it; the loader settings (`CASES`) that tools/rlipv2_reference/make_loader_reference.py ran
RLIPv2's own `MixedRelDetection` and `CocoRLIPDetection` with. The test and the script build it alike.

Under ROOT: `coco-out/`, `o365-out/` (sgpipe shards), `exports/` (what `sgpipe export` wrote),
`COCO/val2017/` and `Objects365/` (the images where RLIPv2 opens them).

- COCO, verified (the run's `source.images` ends in val2017): a subject/object pair stating two
  predicates, two boxes of one category, multi-word names, confidences at, above and below 0.20, an
  image without relations, one whose only relation is below 0.20, a failed image.
- Objects365, unverified (no confidence: RLIPv2 keeps such relations at any threshold), file names in
  Objects365's own `images/v2/patchN/` layout.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sgpipe.output.finalize import finalize_outputs
from sgpipe.output.writer import write_shard
from sgpipe.records import Box, Relation, Sample, Triplet
from sgpipe.shards import iter_shard_samples
from tests.helpers.images import jpeg_bytes
from tests.helpers.samples import build_sample

PROVENANCE = {"sgpipe": "0.1.0", "config_hash": "0" * 16, "models": {}}

# (image id, width, height, boxes (name, category id, xywh), relations (subject index, object index, lemma,
# surface text, confidence))
COCO_IMAGES = [
    (9, 64, 48,
     [("person", 1, [2, 2, 20, 30]), ("dog", 18, [30, 20, 16, 12]), ("bicycle", 2, [10, 25, 30, 20])],
     [(0, 2, "ride", "riding", 0.8), (0, 2, "sit on", "sitting on", 0.45),
      (2, 1, "next to", "next to", 0.1)]),
    (25, 80, 40,
     [("person", 1, [4, 4, 20, 30]), ("person", 1, [40, 2, 18, 34]), ("fire hydrant", 11, [60, 20, 10, 16])],
     [(0, 1, "talk to", "talking to", 0.9), (1, 2, "stand next to", "standing next to", 0.2)]),
    (36, 48, 64, [("traffic light", 10, [4, 4, 8, 20]), ("car", 3, [10, 30, 30, 20])], []),
    (49, 64, 48, [("person", 1, [2, 2, 20, 30]), ("surfboard", 42, [20, 30, 40, 10])],
     [(0, 1, "hold", "holding", 0.19)]),
]
O365_IMAGES = [
    (1234, 64, 48, [("person", 1, [2, 2, 20, 30]), ("horse", 2, [20, 10, 40, 30])],
     [(0, 1, "ride", "riding", None), (0, 1, "next to", "next to", None)]),
    (5678, 48, 48,
     [("cup", 3, [20, 10, 8, 8]), ("dining table", 4, [0, 18, 48, 30]), ("person", 1, [30, 0, 18, 40])],
     [(0, 1, "on", "on", None), (2, 0, "hold", "holding", None)]),
    (9012, 64, 48, [("car", 5, [4, 4, 30, 20])], []),
]

# export name -> (sgpipe output folder, `sgpipe export` options)
EXPORTS = {
    "coco": ("coco-out", []),  # the kept relations (the default)
    "coco_stored": ("coco-out", ["--min-confidence", "0.05"]),  # every stored one: RLIPv2 thresholds them
    "o365": ("o365-out", []),
}

# what each RLIPv2 loader is given (RLIPv2's pre-training uses relation_threshold 0.2)
CASES = [
    {"name": name, "loader": loader, "export": export, "threshold": threshold, "vocabulary": vocabulary}
    for name, loader, export, threshold, vocabulary in [
        ("mixed-coco", "MixedRelDetection", "coco", 0.2, False),
        ("mixed-coco-vocabulary", "MixedRelDetection", "coco", 0.2, True),
        ("mixed-coco-stored", "MixedRelDetection", "coco_stored", 0.2, False),
        ("mixed-coco-stored-unthresholded", "MixedRelDetection", "coco_stored", 0.0, False),
        ("mixed-o365", "MixedRelDetection", "o365", 0.2, False),
        ("mixed-o365-vocabulary", "MixedRelDetection", "o365", 0.2, True),
        ("coco-rlip-vocabulary", "CocoRLIPDetection", "coco", 0.2, True),
        ("coco-rlip", "CocoRLIPDetection", "coco", 0.2, False),
    ]
]


def _sample(dataset: str, image_id: int, width: int, height: int, boxes: list, relations: list) -> Sample:
    objects = [Box(image_id * 10 + n, name, cid, bbox) for n, (name, cid, bbox) in enumerate(boxes)]
    image = jpeg_bytes(width, height, image_id)
    sample = build_sample(
        image_id, dataset, width=width, height=height, objects=objects, image_bytes=image, image_ext="jpg"
    )
    if dataset == "o365":
        sample.file_name = f"images/v2/patch{image_id % 3}/objects365_v2_{image_id:08d}.jpg"
    for n, (s, o, lemma, text, confidence) in enumerate(relations):
        subject, obj = objects[s], objects[o]
        sample.triplets.append(
            Triplet(subject.category, lemma, obj.category, subject.category, text, obj.category, n, 1, [0])
        )
        kept = None if confidence is None else confidence >= 0.2
        sample.relations.append(Relation(n, subject.id, obj.id, lemma, n, 0.5, confidence, kept))
    return sample


def _write_output(out: Path, dataset: str, images: list, source_images: str | None) -> None:
    samples = [_sample(dataset, *image) for image in images]
    if dataset == "coco":
        failed = build_sample(50, dataset, file_name="000000000050.jpg")
        failed.fail("failed_missing", "no such file")
        samples.append(failed)
    write_shard(out, 0, samples[:2], PROVENANCE)
    write_shard(out, 1, samples[2:], PROVENANCE)
    finalize_outputs(out, dataset)
    if source_images:
        (out / "run.json").write_text(json.dumps({"config": {"source": {"images": source_images}}}))


def _place_images(out: Path, path_of) -> None:
    for item in iter_shard_samples(str(out)):
        path = path_of(item.record)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(item.image_bytes)


def export_corpus(root: Path) -> Path:
    """Write the corpus, export it with the `sgpipe export` command, place the images; returns ROOT."""
    from typer.testing import CliRunner

    from sgpipe.cli import app

    _write_output(root / "coco-out", "coco", COCO_IMAGES, "/data/coco/val2017")
    _write_output(root / "o365-out", "o365", O365_IMAGES, None)
    (root / "exports").mkdir()
    for name, (folder, options) in EXPORTS.items():
        output = root / "exports" / f"{name}.json"
        args = ["export", str(root / folder), "--format", "rlipv2", "--output", str(output), *options]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    _place_images(root / "coco-out", lambda r: root / "COCO" / "val2017" / f"{r['image_id']:012d}.jpg")
    o365_paths = json.loads((root / "exports" / "o365_image_id_to_filepath.json").read_text())
    _place_images(root / "o365-out", lambda r: root / "Objects365" / o365_paths[str(r["image_id"])])
    paths_file = root / "Objects365" / "image_id_to_filepath.json"  # the name RLIPv2 reads
    shutil.copy(root / "exports" / "o365_image_id_to_filepath.json", paths_file)
    return root


def export_files(root: Path) -> dict[str, object]:
    """Every file `sgpipe export` wrote, parsed, by name."""
    return {path.name: json.loads(path.read_text()) for path in sorted((root / "exports").glob("*.json"))}


def loader_arguments(root: Path, case: dict) -> dict:
    """What the loader of `case` is given, in RLIPv2's own argument names (paths under ROOT)."""
    exports = root / "exports"
    arguments = {
        "anno_file": str(exports / f"{case['export']}.json"),
        "relation_threshold": case["threshold"],
        "use_all_text_labels": case["vocabulary"],
        "keep_names_freq_file": str(exports / f"{case['export']}_vocab_freq.json"),
    }
    if case["loader"] == "CocoRLIPDetection":  # its folder is the split's own; its vocabulary file required
        return {**arguments, "dataset": ["coco2017"], "coco2017_folder": str(root / "COCO" / "val2017")}
    if not case["vocabulary"]:
        arguments["keep_names_freq_file"] = None
    if case["export"].startswith("coco"):
        return {**arguments, "dataset": ["coco2017"], "coco2017_folder": str(root / "COCO")}
    return {**arguments, "dataset": ["o365"], "o365_folder": str(root / "Objects365")}
