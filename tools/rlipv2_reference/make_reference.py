"""Reference outputs of RLIPv2's own R-Tagger code, for the proof that sgpipe's port computes the same scores.

Runs in a throwaway environment that holds RLIPv2's code, never in sgpipe's (see README.md next to this file
for every step). It imports nothing of sgpipe except two torch-only files loaded by path:
`sgpipe/models/rtagger/keys.py` and `fill.py` (the deterministic weights both sides use).

    python make_reference.py --rlipv2-src /work/rlipv2-src --work /tmp/rlipv2-ref \
        --fixture tests/models/rtagger_fixtures/reference_scores.json \
        --keys tests/models/rtagger_fixtures/official_keys.json
    python make_reference.py --model swin_tiny ... (the same for swin_large)

Writes:
- `--keys`: the full-size official model's state-dict keys and shapes (the flags of
  `scripts/verb_tagger/test_Tagger_resnet.sh`, `test_Tagger_swinT.sh` or `test_Tagger_swinL.sh` by `--model`,
  RoBERTa-base text encoder), which keys are aliases, and the parsed `args` (as a checkpoint stores them).
- `--fixture`: a reduced official model (fewer encoder/decoder layers, a 2-layer RoBERTa text encoder with a
  byte-level vocabulary, small test-time image size; the 768-wide fusion and its RoBERTa layers stay full
  size) filled by `deterministic_fill`, run one image at a time with one candidate group each, exactly as
  `generate_relations_using_verb_tagger.verb_tagger_with_text` runs a group; the inputs and the scores.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
PORT = HERE.parent.parent / "sgpipe" / "models" / "rtagger"

# The flags of scripts/verb_tagger/test_Tagger_resnet.sh that shape the model.
RESNET_FLAGS = [
    "--dataset_file", "coco", "--dec_layers", "3", "--enc_layers", "6", "--num_queries", "200",
    "--backbone", "resnet50", "--dim_feedforward", "1024", "--num_feature_levels", "4", "--with_box_refine",
    "--RLIP_ParSeD_v2", "--fusion_type", "GLIP_attn", "--fusion_interval", "2", "--fusion_last_vis",
    "--verb_tagger", "--batch_size", "1", "--use_no_obj_token", "--lang_aux_loss", "--subject_class",
    "--relation_threshold", "0.05", "--device", "cpu", "--text_encoder_type", "roberta-base",
    "--param_path", "unused.pth", "--save_path", "unused.json",  # required by the parser, not read here
]

def _swin_flags(backbone: str, drop_path_rate: str) -> list[str]:
    """test_Tagger_swinT.sh / test_Tagger_swinL.sh: the ResNet script's flags with these changes."""
    flags = list(RESNET_FLAGS)
    for name, value in (("backbone", backbone), ("dim_feedforward", "2048")):
        flags[flags.index(f"--{name}") + 1] = value
    return flags + ["--dropout", "0.0", "--drop_path_rate", drop_path_rate, "--gating_mechanism", "VXAc",
                    "--verb_query_tgt_type", "vanilla_MBF"]


MODELS = {
    "resnet50": {"flags": RESNET_FLAGS, "swin_depths": None},
    "swin_tiny": {"flags": _swin_flags("swin_tiny", "0.2"), "swin_depths": None},  # Swin-T's backbone is small: full depth
    "swin_large": {"flags": _swin_flags("swin_large", "0.5"), "swin_depths": [2, 2, 2, 2]},  # of 2, 2, 18, 2
}
TAGGER_FLAGS = RESNET_FLAGS  # the released R-Tagger's (bench_rtagger.py builds it)
# Reduced where the official flags allow it (3 fusions <-> 3 decoder layers becomes 2 <-> 2).
REDUCED = {"enc_layers": 4, "dec_layers": 2}
TINY_TEXT = {"num_hidden_layers": 2}  # vocabulary: the byte-level one written by fill.write_byte_tokenizer
MIN_SIZE, MAX_SIZE = 128, 213  # test-time resize, instead of 800 / 1333

CATEGORIES = ["person", "dog", "horse", "cup", "dining table", "bicycle"]
CASES = [
    {
        "image": {"seed": 1, "width": 150, "height": 110},
        "boxes_xywh": [[10.5, 12.0, 60.0, 80.0], [70.0, 30.0, 70.0, 70.5], [20.0, 60.0, 40.0, 45.0]],
        "box_labels": [0, 2, 3],
        "pairs": [[0, 1], [0, 2], [1, 0]],
        "texts": ["riding", "holding", "next to", "looking at"],
    },
    {
        "image": {"seed": 2, "width": 90, "height": 130},
        "boxes_xywh": [[5.0, 5.0, 50.0, 100.0], [40.0, 70.0, 45.0, 55.0]],
        "box_labels": [0, 5],
        "pairs": [[0, 1]],
        "texts": ["riding", "sitting on", "standing next to a"],
    },
    {
        "image": {"seed": 3, "width": 200, "height": 90},
        "boxes_xywh": [[0.0, 0.0, 80.0, 90.0], [100.0, 10.0, 95.0, 60.0], [60.0, 40.0, 30.0, 30.0], [150.0, 50.0, 60.0, 60.0]],
        "box_labels": [1, 4, 3, 0],
        "pairs": [[0, 1], [3, 2], [3, 0], [0, 3], [2, 1]],
        "texts": ["on", "under", "eating from", "near", "watching", "in front of"],
    },
]


def load_port_file(name: str):
    spec = importlib.util.spec_from_file_location(name, PORT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def text_encoder_dir(work: Path, fill, layers: int | None) -> Path:
    """config.json + tokenizer files for RLIPv2's patched loader (RLIP_TEXT_ENCODER_DIR)."""
    from transformers import RobertaConfig

    folder = work / ("roberta-tiny" if layers else "roberta-base-config")
    vocab = fill.write_byte_tokenizer(folder)
    config = RobertaConfig(  # RoBERTa-base's shape
        vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0,
        eos_token_id=2,
    )
    if layers:
        config.vocab_size, config.num_hidden_layers = vocab, layers
    config.save_pretrained(folder)
    return folder


def build_official(src: Path, flags: list[str], swin_depths: list[int] | None = None):
    """RLIPv2's model, built as generate_relations_using_verb_tagger.main_tagger builds it; `swin_depths`
    replaces the blocks per stage of a Swin backbone (a reduced model)."""
    sys.path.insert(0, str(src))
    import transformers
    from generate_relations_using_verb_tagger import get_args_parser
    from models.DDETR_backbone import build_backbone
    from models.hoi import RLIP_ParSeD
    from models.swin import backbone as swin_backbone
    from models.transformer import build_transformer

    if swin_depths is not None:
        full_size = swin_backbone.SwinTransformer
        swin_backbone.SwinTransformer = lambda **kwargs: full_size(**{**kwargs, "depths": swin_depths})

    # The text encoder is built from its config.json; the weights are filled afterwards anyway.
    def from_config(path, **_):
        return transformers.RobertaModel(transformers.RobertaConfig.from_pretrained(path), add_pooling_layer=True)

    transformers.RobertaModel.from_pretrained = from_config
    import models.ParSetransformer as parse_module
    parse_module.RobertaModel.from_pretrained = from_config

    args = get_args_parser().parse_args(flags)
    args.lr_backbone, args.masks = 0, False
    backbone = swin_backbone.build_backbone(args) if "swin" in args.backbone else build_backbone(args)
    transformer = build_transformer(args)
    model = RLIP_ParSeD(
        backbone, transformer, num_queries=args.num_queries, num_feature_levels=args.num_feature_levels,
        with_box_refine=args.with_box_refine, two_stage=args.two_stage, subject_class=args.subject_class, args=args,
    )
    return model.eval(), args


def write_keys(src: Path, work: Path, out: Path, keys_module, fill, model_name: str) -> None:
    os.environ["RLIP_TEXT_ENCODER_DIR"] = str(text_encoder_dir(work, fill, None))
    flags = MODELS[model_name]["flags"]
    # Swin's constructor reads values of a tensor (its drop-path schedule): built for real, not on meta
    with torch.device("cpu" if "swin" in model_name else "meta"):
        model, args = build_official(src, flags)
    state = model.state_dict()
    plain = (str, int, float, bool, type(None))
    out.write_text(json.dumps({
        "flags": flags,
        "args": {k: v for k, v in sorted(vars(args).items()) if isinstance(v, plain)},
        "keys": {name: list(tensor.shape) for name, tensor in state.items()},
        "aliases": sorted(name for name in state if keys_module.is_alias(name)),
        # Swin's relative position index (one window size in all blocks): the values the converter checks
        **({"relative_position_index": next(t for k, t in state.items() if k.endswith("relative_position_index")).tolist()}
           if "swin" in model_name else {}),
    }, indent=0) + "\n")
    print(f"{out}: {len(state)} keys, {sum(t.numel() for t in state.values())} elements")


def _flags_reduced(model_name: str) -> list[str]:
    flags = list(MODELS[model_name]["flags"])
    for name, value in REDUCED.items():
        flags[flags.index(f"--{name}") + 1] = str(value)
    return flags


def run_case(model, case: dict, fill, categories=CATEGORIES, min_size=MIN_SIZE, max_size=MAX_SIZE) -> list[list[float]]:
    """One image, one candidate group: the steps of verb_tagger_with_text for a group of size 1."""
    import datasets.transforms as T
    from PIL import Image
    from util.misc import nested_tensor_from_tensor_list

    spec = case["image"]
    image = Image.fromarray(fill.synthetic_image_array(spec["seed"], spec["width"], spec["height"]).numpy())
    width, height = image.size
    boxes = torch.as_tensor(case["boxes_xywh"], dtype=torch.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]  # datasets/coco.py ConvertCocoPolysToMask
    boxes[:, 0::2].clamp_(min=0, max=width)
    boxes[:, 1::2].clamp_(min=0, max=height)
    target = {"boxes": boxes, "labels": torch.as_tensor(case["box_labels"])}
    transform = T.Compose([
        T.RandomResize([min_size], max_size=max_size), T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    pixels, target = transform(image, target)
    samples = nested_tensor_from_tensor_list([pixels])

    flat_text = list(categories) + ["no objects"] + case["texts"]
    names_sums = torch.tensor([[len(categories) + 1, len(case["texts"])]])
    tokens = model.transformer.tokenizer.batch_encode_plus(flat_text, padding="longest", return_tensors="pt")
    text_memory = model.transformer.text_encoder(**tokens).pooler_output.unsqueeze(1)
    text = (torch.zeros(text_memory.shape[:2]).bool(), text_memory, names_sums)
    sub = [s for s, _ in case["pairs"]]
    obj = [o for _, o in case["pairs"]]
    labels = target["labels"]
    targets = [{"sub_boxes": target["boxes"][sub], "obj_boxes": target["boxes"][obj],
                "sub_labels": labels[sub], "obj_labels": labels[obj]}]
    with torch.no_grad():
        cache = model(samples, encode_and_save=True, text=text, targets=targets)
        outputs = model(samples, encode_and_save=False, memory_cache=cache, text=text, targets=targets)
    scores = outputs["pred_verb_logits"].sigmoid()[0, : len(case["pairs"])]
    return scores.tolist()


def write_fixture(src: Path, work: Path, out: Path, fill, model_name: str) -> None:
    os.environ["RLIP_TEXT_ENCODER_DIR"] = str(text_encoder_dir(work, fill, TINY_TEXT["num_hidden_layers"]))
    torch.set_num_threads(1)  # thread count moves the last digits
    swin_depths = MODELS[model_name]["swin_depths"]
    model, args = build_official(src, _flags_reduced(model_name), swin_depths)
    fill.deterministic_fill(model.state_dict(), REDUCED["dec_layers"])
    text_config = model.transformer.text_encoder.config
    results = [{**case, "scores": run_case(model, case, fill)} for case in CASES]
    config = {
        "enc_layers": REDUCED["enc_layers"], "dec_layers": REDUCED["dec_layers"], "min_size": MIN_SIZE,
        "max_size": MAX_SIZE,
        "text": {"vocab_size": text_config.vocab_size, "num_hidden_layers": text_config.num_hidden_layers},
    }
    if model_name != "resnet50":  # the port's config names for the flags that differ from the ResNet script's
        config.update(backbone=args.backbone, dim_feedforward=args.dim_feedforward,
                      gating_mechanism=args.gating_mechanism, verb_query_tgt_type=args.verb_query_tgt_type)
        if swin_depths is not None:
            config["swin_depths"] = swin_depths
    out.write_text(json.dumps({"config": config, "category_names": CATEGORIES, "cases": results}, indent=1) + "\n")
    print(f"{out}: {len(results)} cases")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rlipv2-src", type=Path, required=True, help="RLIPv2's code with official-code-on-cpu.diff")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (text encoder config, tokenizer)")
    parser.add_argument("--fixture", type=Path, help="where to write the reference scores")
    parser.add_argument("--keys", type=Path, help="where to write the full-size key/shape list")
    parser.add_argument("--model", choices=sorted(MODELS), default="resnet50", help="which tagger script's model")
    options = parser.parse_args()
    keys_module, fill = load_port_file("keys"), load_port_file("fill")
    src = options.rlipv2_src.resolve()
    if options.keys:
        write_keys(src, options.work, options.keys, keys_module, fill, options.model)
    if options.fixture:
        write_fixture(src, options.work, options.fixture, fill, options.model)


if __name__ == "__main__":
    main()
