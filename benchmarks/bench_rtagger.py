"""R-Tagger speed: sgpipe's port vs RLIPv2's own code (CPU), and images/s by batch size (GPU).

    # CPU: both sides at full size on the same images in one run; RLIPv2's side runs in its own environment
    # (tools/rlipv2_reference/README.md) as a subprocess of this script
    python benchmarks/bench_rtagger.py --official-python /work/rlipv2-env/bin/python --rlipv2-src /work/rlipv2-src

    # the same for RLIPv2's Swin-T / Swin-L taggers (test_Tagger_swinT.sh, test_Tagger_swinL.sh)
    python benchmarks/bench_rtagger.py --model swin_tiny --official-python ... --rlipv2-src ...

    # GPU: the port at full size, bf16, by batch size, against RLIPv2's loop settings (batch 1, fp32)
    python benchmarks/bench_rtagger.py --gpu --images 64 --batch-sizes 1,4,8,16,32

Both sides hold the same deterministic weights (fill.deterministic_fill) and a byte-level tokenizer (the speed
of RoBERTa-base's layers does not depend on its vocabulary), so the CPU run also reports the largest score
difference between the two at full size. Inputs per image: 80 COCO category names + "no objects" + 20
relation texts, 6 boxes, 30 candidate pairs (one candidate group), as RLIPv2's loop runs one group.
Only torch and the standard library are imported at the top: RLIPv2's environment runs this file too.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
COCO_NAMES = list(json.loads((ROOT / "sgpipe" / "vocab" / "coco.json").read_text()))
RELATIONS = ["on", "holding", "riding", "next to", "wearing", "sitting on", "in front of", "behind", "under",
             "looking at", "carrying", "eating", "standing on", "near", "using", "playing with", "walking on",
             "hanging from", "lying on", "parked on"]


def make_cases(count: int, width: int, height: int) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    cases = []
    for index in range(count):
        xy = torch.rand((6, 2), generator=gen) * torch.tensor([width * 0.7, height * 0.7])
        wh = (0.1 + 0.25 * torch.rand((6, 2), generator=gen)) * torch.tensor([width, height])
        labels = torch.randint(0, len(COCO_NAMES), (6,), generator=gen).tolist()
        pairs = [[s, o] for s in range(6) for o in range(6) if s != o]
        cases.append({
            "image": {"seed": 100 + index, "width": width, "height": height},
            "boxes_xywh": torch.cat([xy, wh], 1).tolist(), "box_labels": labels, "pairs": pairs, "texts": RELATIONS,
        })
    return cases


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_official(options) -> None:
    """In RLIPv2's environment: the full official model, one image and one group at a time."""
    spec = importlib.util.spec_from_file_location("make_reference", ROOT / "tools" / "rlipv2_reference" / "make_reference.py")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    import os

    ref.load_port_file("keys")
    fill = ref.load_port_file("fill")
    os.environ["RLIP_TEXT_ENCODER_DIR"] = str(ref.text_encoder_dir(Path(options.work), fill, None))
    vocab = fill.write_byte_tokenizer(Path(options.work) / "roberta-base-config")
    config = json.loads((Path(options.work) / "roberta-base-config" / "config.json").read_text())
    config["vocab_size"] = vocab  # byte-level vocabulary, RoBERTa-base's 12 layers
    (Path(options.work) / "roberta-base-config" / "config.json").write_text(json.dumps(config))
    model, _ = ref.build_official(Path(options.rlipv2_src), ref.MODELS[options.model]["flags"])
    fill.deterministic_fill(model.state_dict(), 3)
    cases = make_cases(options.images + 1, options.width, options.height)
    ref.run_case(model, cases[0], fill, COCO_NAMES, 800, 1333)  # warm-up
    seconds, scores = [], []
    for case in cases[1:]:
        start = time.perf_counter()
        scores.append(ref.run_case(model, case, fill, COCO_NAMES, 800, 1333))
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"seconds": seconds, "scores": scores, "peak_rss_gb": _peak_rss_gb()}))


SWIN_FIELDS = {"dim_feedforward": 2048, "gating_mechanism": "VXAc", "verb_query_tgt_type": "vanilla_MBF"}


def _port_tagger(device: str, model: str = "resnet50"):
    sys.path.insert(0, str(ROOT))
    from transformers import AutoTokenizer

    from sgpipe.models.rtagger import RTagger, RTaggerConfig
    from sgpipe.models.rtagger.fill import deterministic_fill, write_byte_tokenizer
    from sgpipe.models.rtagger.model import RTaggerNet

    folder = Path(tempfile.mkdtemp())
    vocab = write_byte_tokenizer(folder)
    fields = {} if model == "resnet50" else {"backbone": model, **SWIN_FIELDS}
    config = RTaggerConfig.from_dict({"text": {"vocab_size": vocab}, **fields})
    net = RTaggerNet.without_init(config)
    deterministic_fill(net.state_dict(), config.dec_layers)
    return RTagger(net, AutoTokenizer.from_pretrained(str(folder)), device)


def _inputs(cases):
    from PIL import Image

    from sgpipe.models.rtagger import TaggerInput
    from sgpipe.models.rtagger.fill import synthetic_image_array

    return [TaggerInput(Image.fromarray(synthetic_image_array(c["image"]["seed"], c["image"]["width"], c["image"]["height"]).numpy()),
                        c["boxes_xywh"], c["box_labels"], [tuple(p) for p in c["pairs"]], c["texts"], COCO_NAMES)
            for c in cases]


def run_cpu(options) -> None:
    torch.set_num_threads(options.threads)
    print(f"RLIPv2's code: {options.images} images of {options.width}x{options.height}, {options.threads} threads ...", flush=True)
    with tempfile.TemporaryDirectory() as work:
        done = subprocess.run(
            [options.official_python, __file__, "--role", "official", "--model", options.model,
             "--rlipv2-src", options.rlipv2_src, "--work", work,
             "--images", str(options.images), "--width", str(options.width), "--height", str(options.height),
             "--threads", str(options.threads)],
            cwd=options.rlipv2_src, capture_output=True, text=True, check=True,
        )
    official = json.loads(done.stdout.strip().splitlines()[-1])
    import numpy as np

    tagger = _port_tagger("cpu", options.model)
    items = _inputs(make_cases(options.images + 1, options.width, options.height))
    tagger.score_batch(items[:1])  # warm-up
    seconds, diffs = [], []
    for item, reference in zip(items[1:], official["scores"]):
        start = time.perf_counter()
        scores = tagger.score_batch([item])[0]
        seconds.append(time.perf_counter() - start)
        diffs.append(float(np.abs(scores - np.asarray(reference)[: len(item.pairs)]).max()))
    rlip, port = sum(official["seconds"]) / len(official["seconds"]), sum(seconds) / len(seconds)
    print(f"RLIPv2's code: {rlip:.2f} s/image, peak RSS {official['peak_rss_gb']:.2f} GiB")
    print(f"sgpipe port:   {port:.2f} s/image, peak RSS {_peak_rss_gb():.2f} GiB")
    print(f"speed-up {rlip / port:.2f}x; max |score difference| {max(diffs):.2e} (fp32, full size, {options.model})")


def run_gpu(options) -> None:
    tagger = _port_tagger("cuda", options.model)
    items = _inputs(make_cases(options.images, options.width, options.height))
    torch.backends.cuda.matmul.allow_tf32 = False

    def rate(batch: int, bf16: bool) -> float:
        tagger.bf16 = bf16
        for start in range(0, min(len(items), 2 * batch), batch):  # warm-up
            tagger.score_batch(items[start : start + batch])
        torch.cuda.synchronize()
        begin = time.perf_counter()
        for start in range(0, len(items), batch):
            tagger.score_batch(items[start : start + batch])
        torch.cuda.synchronize()
        return len(items) / (time.perf_counter() - begin)

    import numpy as np

    tagger.bf16 = False
    exact = [tagger.score_batch([item])[0] for item in items[:8]]
    tagger.bf16 = True
    fast = tagger.score_batch(items[:8])
    drift = max(float(np.abs(a - b).max()) for a, b in zip(exact, fast))
    print(f"bf16 batch 8 vs fp32 batch 1: max |score difference| {drift:.2e} (deterministic random weights)")
    baseline = rate(1, bf16=False)
    print(f"{torch.cuda.get_device_name()}; {len(items)} images of {options.width}x{options.height}")
    print(f"RLIPv2's loop settings (batch 1, fp32): {baseline:.1f} images/s ({1 / baseline:.3f} s/image; "
          f"RLIPv2 reports 0.229 s/image with its compiled op)")
    for batch in [int(b) for b in options.batch_sizes.split(",")]:
        for bf16 in (False, True):  # fp32 is the default (verify.dtype auto); bf16 the opt-in
            value = rate(batch, bf16=bf16)
            print(f"batch {batch:3d} {'bf16' if bf16 else 'fp32'}: {value:7.1f} images/s  {value / baseline:5.1f}x the "
                  f"fp32 batch-1 loop, {value * 0.229:5.1f}x RLIPv2's reported rate; "
                  f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=["compare", "official"], default="compare", help=argparse.SUPPRESS)
    parser.add_argument("--official-python", help="python of RLIPv2's environment (CPU comparison)")
    parser.add_argument("--rlipv2-src", help="RLIPv2's code with official-code-on-cpu.diff applied")
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--gpu", action="store_true", help="images/s by batch size on CUDA")
    parser.add_argument("--model", choices=["resnet50", "swin_tiny", "swin_large"], default="resnet50",
                        help="which of RLIPv2's tagger scripts' models")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", default="1,4,8,16,32")
    options = parser.parse_args()
    if options.role == "official":
        torch.set_num_threads(options.threads)
        run_official(options)
    elif options.gpu:
        run_gpu(options)
    elif options.official_python and options.rlipv2_src:
        run_cpu(options)
    else:
        parser.error("give --official-python and --rlipv2-src (CPU comparison) or --gpu")


if __name__ == "__main__":
    main()
