"""`sgpipe convert rtagger` on a full-size RLIPv2 training checkpoint: peak memory and time.

    python benchmarks/bench_rtagger_convert.py [--baseline-tree /tmp/sgpipe-before]
    python benchmarks/bench_rtagger_convert.py --quick        # a reduced model, seconds (the test suite runs it)

The checkpoint is what RLIPv2's trainer saves: the ResNet-50 R-Tagger's state dict (its 971 keys, random
values), `args` as an argparse.Namespace, and AdamW's two moments per parameter (the bulk of the released
`checkpoint0019.pth`). Each conversion is a fresh `python -m sgpipe.cli convert rtagger` process; its peak
resident memory (ru_maxrss) and wall time are reported, for this checkout and, with `--baseline-tree`, another.
The checkpoint is written by a process of its own: Linux carries a parent's peak memory into the ru_maxrss of
the processes it starts, so the parent here stays small (no torch).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_checkpoint(path: Path, quick: bool) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from sgpipe.models.rtagger import RTaggerConfig
    from sgpipe.models.rtagger.flags import RELEASED
    from sgpipe.models.rtagger.model import RTaggerNet

    fields = {"enc_layers": 2, "dec_layers": 1, "text": {"num_hidden_layers": 1, "vocab_size": 261}} if quick else {}
    config = RTaggerConfig.from_dict(fields)
    net = RTaggerNet.without_init(config)
    generator = torch.Generator().manual_seed(0)
    state = {}
    for name, tensor in net.state_dict().items():
        if tensor.is_floating_point():
            tensor.normal_(generator=generator)
        if not name.endswith("token_type_ids"):
            state[name] = tensor
    for head in ("sub_bbox_embed", "obj_bbox_embed"):  # RLIPv2 registers the decoders' box heads twice
        for key in [k for k in state if k.startswith(head + ".")]:
            index, rest = key[len(head) + 1 :].split(".", 1)
            decoder, local = ("ho_decoder", int(index)) if int(index) < config.dec_layers else (
                "verb_decoder", int(index) - config.dec_layers)
            state[f"transformer.{decoder}.{head}.{local}.{rest}"] = state[key]
    params = list(net.parameters())[: 10 if quick else None]
    optimizer = {"state": {i: {"step": torch.tensor(100.0), "exp_avg": torch.zeros_like(p),
                               "exp_avg_sq": torch.zeros_like(p)} for i, p in enumerate(params)},
                 "param_groups": [{"lr": 1e-4, "params": list(range(len(params)))}]}
    args = {**RELEASED["resnet50"][1], "enc_layers": config.enc_layers, "dec_layers": config.dec_layers}
    torch.save({"model": state, "optimizer": optimizer, "epoch": 19, "args": argparse.Namespace(**args)}, path)
    write_tokenizer(path.parent / "tokenizer", config.text["vocab_size"])
    return {"file_gib": round(path.stat().st_size / 2**30, 2), "tensors": len(state)}


def write_tokenizer(folder: Path, size: int) -> None:
    """The byte-level tokenizer, padded with filler tokens to the text encoder's vocabulary size."""
    from sgpipe.models.rtagger.fill import write_byte_tokenizer

    vocab = write_byte_tokenizer(folder)
    entries = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    entries.update({f"<filler{i}>": vocab + i for i in range(size - vocab)})
    (folder / "vocab.json").write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")


def convert(tree: Path, checkpoint: Path, tokenizer: Path, out: Path) -> dict:
    command = [sys.executable, "-m", "sgpipe.cli", "convert", "rtagger", str(checkpoint), "--out", str(out),
               "--tokenizer", str(tokenizer)]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status:
        sys.exit(f"convert with {tree} failed: {process.stderr.read().decode()[-2000:]}")
    return {"peak_rss_gib": round(usage.ru_maxrss / 2**20, 2), "seconds": round(seconds, 1),
            "summary": process.stdout.read().decode().strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a reduced model (seconds)")
    parser.add_argument("--baseline-tree", type=Path, help="another sgpipe checkout, measured in the same run")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--write-checkpoint", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.write_checkpoint:
        print(json.dumps(write_checkpoint(options.write_checkpoint, options.quick)))
        return
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        written = subprocess.run([sys.executable, __file__, "--write-checkpoint", str(work / "checkpoint0019.pth")]
                                 + (["--quick"] if options.quick else []), capture_output=True, text=True, check=True)
        report = {"checkpoint": json.loads(written.stdout.strip().splitlines()[-1])}
        tokenizer = work / "tokenizer"
        trees = {"this_tree": ROOT}
        if options.baseline_tree:
            trees["baseline_tree"] = options.baseline_tree.resolve()
        for name, tree in trees.items():
            report[name] = convert(tree, work / "checkpoint0019.pth", tokenizer, work / name)
    print(json.dumps(report, indent=1))
    if options.json:
        options.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
