"""The RLIPv2 flow fixture (tools/rlipv2_reference/make_flow_reference.py) as sgpipe inputs, and the distance
between an `export --format rlipv2` and RLIPv2's own output.

The fixture holds what RLIPv2's code was given (image seeds and sizes, the COCO instances file, ten captions
per image, the reduced R-Tagger's config; its weights are `deterministic_fill`'s) and what it wrote: its
candidate groups and its deduplicated relations, with confidences.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from sgpipe.models.device import one_thread
from sgpipe.models.rtagger.fill import synthetic_image_array
from sgpipe.models.rtagger.reference import cached_fixture_tagger, load_fixture, tagger_for_fixture

FIXTURES = Path(__file__).resolve().parents[1] / "rlipv2_flow" / "fixtures"
REFERENCE_SCORES = Path(__file__).resolve().parents[1] / "models" / "rtagger_fixtures" / "reference_scores.json"
BOX_TOLERANCE = 0.01  # RLIPv2 writes its boxes back from float32 normalised ones


def load_flow_fixture(name: str = "coco") -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def write_flow_inputs(fixture: dict, folder: Path) -> dict[str, Path]:
    """The fixture's images (PNG), instances file and captions (COCO captions format, in RLIPv2's order)."""
    images = folder / "images"
    names = {image["id"]: image["file_name"] for image in fixture["instances"]["images"]}
    for spec in fixture["images"]:
        path = images / names[spec["id"]]
        path.parent.mkdir(parents=True, exist_ok=True)
        with one_thread():  # as the reference made them: with more threads a pixel may round the other way
            pixels = synthetic_image_array(spec["seed"], spec["width"], spec["height"]).numpy()
        Image.fromarray(pixels).save(path)
    (folder / "instances.json").write_text(json.dumps(fixture["instances"]))
    annotations = [
        {"id": 100 * int(image_id) + i, "image_id": int(image_id), "caption": text}
        for image_id, texts in fixture["captions"].items()
        for i, text in enumerate(texts)
    ]
    (folder / "captions.json").write_text(json.dumps({"annotations": annotations}))
    return {"images": images, "instances": folder / "instances.json", "captions": folder / "captions.json"}


def write_flow_tagger(fixture: dict, folder: Path) -> Path:
    """The reduced R-Tagger RLIPv2's code ran, as a `sgpipe convert rtagger` folder (built once per process
    where it is the R-Tagger reference's own: the same config, the same deterministic weights)."""
    if fixture["config"] == load_fixture(REFERENCE_SCORES)["config"]:
        tagger = cached_fixture_tagger(str(REFERENCE_SCORES))[1]
    else:
        tagger = tagger_for_fixture(fixture)
    tagger.save_pretrained(folder)
    return folder


@dataclass
class Distance:
    """Relations as (image, subject box, object box, relation text): in both, only in each; confidences."""

    shared: int
    only_sgpipe: list[tuple]
    only_rlipv2: list[tuple]
    max_confidence_difference: float

    def summary(self) -> dict:
        return {
            "shared": self.shared, "only_sgpipe": len(self.only_sgpipe), "only_rlipv2": len(self.only_rlipv2),
            "max_confidence_difference": self.max_confidence_difference,
        }


def _box_ids(rlipv2_objects: list, exported: list[dict], image_id: int) -> list[int]:
    """The exported object id of each of RLIPv2's objects: the same box within BOX_TOLERANCE (and, between
    equal boxes, the same name: RLIPv2 names Objects365 boxes its own way, "monitor/tv" for "Moniter/TV")."""
    ids = []
    for name, *box in rlipv2_objects:
        found = [o for o in exported
                 if max(abs(a - b) for a, b in zip(box, (o["x"], o["y"], o["w"], o["h"]))) < BOX_TOLERANCE]
        if len(found) > 1:
            found = [o for o in found if o["names"].lower() == name]
        assert len(found) == 1, f"image {image_id}: RLIPv2's {name} {box} matches {len(found)} exported boxes"
        ids.append(found[0]["object_id"])
    return ids


def flow_distance(rlipv2_output: list[dict], exported: list[dict]) -> Distance:
    """Compare RLIPv2's output (the fixture's `output`) with an exported RLIPv2 JSON of the same images."""
    items = {item["image_id"]: item for item in exported}
    reference: dict[tuple, float] = {}
    for item in rlipv2_output:
        image_id = item["image_id"]
        ids = _box_ids(item["objects"], items[image_id]["objects"], image_id) if item["relations"] else []
        for s, o, text, confidence in item["relations"]:
            reference[(image_id, ids[s], ids[o], item["texts"][text])] = confidence
    ours = {
        (item["image_id"], r["subject_id"], r["object_id"], r["predicate"]): r["confidence"]
        for item in exported
        for r in item["relationships"]
    }
    shared = set(reference) & set(ours)
    return Distance(
        shared=len(shared),
        only_sgpipe=sorted(set(ours) - shared),
        only_rlipv2=sorted(set(reference) - shared),
        max_confidence_difference=max((abs(reference[k] - ours[k]) for k in shared), default=0.0),
    )
