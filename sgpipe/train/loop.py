"""The training loop: one readable function over `TrainConfig`.

Optimizer steps are counted globally; epoch e covers steps [e*S, (e+1)*S) for a fixed S per
epoch, on every rank (a fixed step count is what keeps `torchrun` ranks from hanging when their
shards hold different sample counts). A checkpoint folder is a loadable verifier
(`config.json` + `model.safetensors`) plus `optimizer.pt` and `rng_state.pt` (tensors only, read
with `weights_only=True`) and `trainer_state.json`; resuming rebuilds the epoch's data stream and
skips the batches already trained on, so the data order is that of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from sgpipe.errors import SgpipeError
from sgpipe.train.config import TrainConfig, dump_config, load_train_config

log = logging.getLogger(__name__)
STATE_NAME = "trainer_state.json"
OPTIMIZER_NAME = "optimizer.pt"
RNG_NAME = "rng_state.pt"  # dropout draws continue as in an uninterrupted run


def _distributed() -> tuple[int, int, int]:
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))


def _device(name: str, local_rank: int) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SgpipeError("run.device is cuda but no CUDA device is visible")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def lr_at(step: int, base: float, warmup: int, total: int, time_fraction: float = 0.0) -> float:
    """Linear warmup, then cosine decay to a tenth of the base rate over whichever budget, steps or
    time (`time_fraction` of `optim.max_seconds` spent), runs out first."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, max((step - warmup) / max(1, total - warmup), time_fraction))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def latest_checkpoint(out: Path) -> Path | None:
    folders = sorted((out / "checkpoints").glob("step-*"))
    complete = [f for f in folders if (f / STATE_NAME).is_file()]
    return complete[-1] if complete else None


def _count_samples(urls: Sequence[str], options: dict[str, Any]) -> int:
    """From the shards' `_stats.json` (written by sgpipe), else by reading the tar headers."""
    import tarfile

    from sgpipe.storage import location, open_binary

    total = 0
    for url in urls:
        stats = location(url[: -len(".tar")] + "_stats.json", options)
        if stats.is_file():
            total += int(json.loads(stats.read_text())["nsamples"])
            continue
        with open_binary(location(url, options)) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            total += sum(1 for m in tar if m.name.endswith(".json"))
    return total


def _save_checkpoint(
    model: Any, optimizer: torch.optim.Optimizer, state: dict[str, Any], out: Path, keep: int
) -> Path:
    folder = out / "checkpoints" / f"step-{state['step']:07d}"
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    torch.save(optimizer.state_dict(), partial / OPTIMIZER_NAME)
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    torch.save(rng, partial / RNG_NAME)
    (partial / STATE_NAME).write_text(json.dumps(state, indent=2) + "\n")  # written last: complete
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    for old in sorted((out / "checkpoints").glob("step-*"))[:-keep]:
        if not old.name.endswith(".partial"):
            shutil.rmtree(old, ignore_errors=True)
    return folder


def _build_model(config: TrainConfig, urls: Sequence[str], resume_from: Path | None) -> Any:
    from sgpipe.models.verifier import Verifier, preset_config
    from sgpipe.train.data import scan_predicates

    if resume_from is not None:
        return Verifier.from_pretrained(resume_from)
    if config.model.init:
        model = Verifier.from_pretrained(config.model.init)
    else:
        model = Verifier.build(preset_config(config.model.preset, **config.model.options))
    frequencies = scan_predicates(
        urls, config.data.min_confidence, config.data.vocab_scan_samples, config.data.storage_options
    )
    if not frequencies:
        raise SgpipeError(
            f"no relation with confidence >= {config.data.min_confidence} in {config.data.train}"
        )
    merged = dict(model.config.predicate_frequencies)
    for name, count in frequencies.items():
        merged[name] = merged.get(name, 0) + count
    model.config.predicate_frequencies = dict(sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])))
    return model


class _Metrics:
    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record, sort_keys=True) + "\n")


def _evaluate(model: Any, config: TrainConfig, step: int) -> dict[str, Any]:
    from sgpipe.shards import expand_urls
    from sgpipe.train.evaluate import evaluate

    metrics = evaluate(
        model,
        expand_urls(config.data.eval, config.data.storage_options),
        model.config.image_size,
        keep_threshold=config.run.keep_threshold,
        min_confidence=config.data.min_confidence,
        max_negative_confidence=config.data.max_negative_confidence,
        vocabulary=sorted(model.config.predicate_frequencies),
        batch_size=config.data.batch_size,
        max_samples=config.run.eval_samples,
        storage_options=config.data.storage_options,
    )
    log.info(
        "eval at step %d: %s",
        step,
        {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()},
    )
    return {"step": step, "eval": metrics}


def train(config: TrainConfig) -> Path:
    """Train the verifier; returns the folder of the final checkpoint (`OUT/final`)."""
    from torch.utils.data import DataLoader

    from sgpipe.shards import expand_urls
    from sgpipe.train.data import ShardStream, stable_seed

    rank, world, local_rank = _distributed()
    device = _device(config.run.device, local_rank)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    out = Path(config.run.out)
    out.mkdir(parents=True, exist_ok=True)
    urls = expand_urls(config.data.train, config.data.storage_options)
    if len(urls) < world:
        raise SgpipeError(
            f"{len(urls)} training shards for {world} ranks: reshard into at least one per rank "
            "(`sgpipe reshard`)"
        )
    resume_from = latest_checkpoint(out) if config.run.resume else None
    state = json.loads((resume_from / STATE_NAME).read_text()) if resume_from else {"step": 0}
    torch.manual_seed(config.run.seed)
    model = _build_model(config, urls, resume_from).to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    if resume_from is not None:
        optimizer.load_state_dict(
            torch.load(resume_from / OPTIMIZER_NAME, map_location=device, weights_only=True)
        )
        rng = torch.load(resume_from / RNG_NAME, weights_only=True)
        torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"])
        log.info("resuming from %s at step %d", resume_from, state["step"])
    network = model
    if world > 1:
        network = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None
        )
    d, o = config.data, config.optim
    per_step = d.batch_size * o.grad_accum
    samples = 0 if o.steps_per_epoch else _count_samples(urls, config.data.storage_options)
    steps_per_epoch = o.steps_per_epoch or max(1, samples // (world * per_step))
    total = o.max_steps or o.epochs * steps_per_epoch
    workers = min(d.num_workers, max(1, len(urls) // world))  # an idle worker would break the round-robin
    autocast_dtype = (
        torch.bfloat16
        if (config.run.dtype == "bfloat16" or (config.run.dtype == "auto" and device.type == "cuda"))
        else None
    )
    metrics = _Metrics(out / "metrics.jsonl", rank == 0)
    if rank == 0 and resume_from is None and metrics.path.exists():
        metrics.path.unlink()  # a fresh run: metrics of an earlier one in this folder would mislead
    if rank == 0:
        (out / "train_config.yaml").write_text(dump_config(config))
    example_args = {
        "min_confidence": d.min_confidence,
        "max_negative_confidence": d.max_negative_confidence,
        "negative_predicates": d.negative_predicates,
        "negative_pairs": d.negative_pairs,
        "max_pairs": d.max_pairs,
    }
    step = int(state["step"])
    started = last_log = time.perf_counter()
    images_since_log, loss_since_log, steps_since_log = 0, 0.0, 0
    stop = False
    while step < total and not stop:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        stream = ShardStream(
            urls,
            rank=rank,
            world_size=world,
            seed=config.run.seed,
            epoch=epoch,
            batch_size=d.batch_size,
            image_size=model.config.image_size,
            frequencies=model.config.predicate_frequencies,
            shuffle_buffer=d.shuffle_buffer,
            skip_batches=in_epoch * o.grad_accum,
            passes=None,
            example_args=example_args,
            storage_options=d.storage_options,
        )
        # its own generator: starting a loader must not draw from the RNG that dropout uses
        loader = DataLoader(
            stream,
            batch_size=None,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            prefetch_factor=4 if workers else None,
            generator=torch.Generator().manual_seed(stable_seed(config.run.seed, epoch)),
        )
        batches = iter(loader)
        while in_epoch < steps_per_epoch and step < total:
            spent = (time.perf_counter() - started) / o.max_seconds if o.max_seconds else 0.0
            lr = lr_at(step, o.lr, o.warmup_steps, total, spent)
            for group in optimizer.param_groups:
                group["lr"] = lr
            keys: list[str] = []
            step_loss = 0.0
            for micro in range(o.grad_accum):
                batch = next(batches)
                keys.extend(batch["keys"])
                sync = (
                    contextlib.nullcontext() if world == 1 or micro == o.grad_accum - 1 else network.no_sync()
                )
                with (
                    sync,
                    torch.autocast(
                        device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
                    ),
                ):
                    loss = model.loss(network(batch), batch) / o.grad_accum
                loss.backward()
                step_loss += loss.item()
            if o.clip_grad:
                torch.nn.utils.clip_grad_norm_(trainable, o.clip_grad)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            in_epoch += 1
            images_since_log += len(keys) * world
            loss_since_log += step_loss
            steps_since_log += 1
            stop = bool(o.max_seconds and time.perf_counter() - started >= o.max_seconds)
            if world > 1:  # every rank stops at the same step
                flag = torch.tensor([float(stop)], device=device)
                torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
                stop = bool(flag.item())
            if step % config.run.log_every == 0 or step == total or stop:
                now = time.perf_counter()
                rate = images_since_log / max(now - last_log, 1e-9)
                log.info(
                    "step %d/%d epoch %d loss %.4f lr %.2e %.1f samples/s",
                    step,
                    total,
                    epoch,
                    loss_since_log / steps_since_log,
                    lr,
                    rate,
                )
                metrics.write(
                    {
                        "step": step,
                        "epoch": epoch,
                        "loss": loss_since_log / steps_since_log,
                        "lr": lr,
                        "samples_per_s": rate,
                        "elapsed_s": now - started,
                        "batch_keys_md5": hashlib.md5("\n".join(keys).encode()).hexdigest(),
                    }
                )
                last_log, images_since_log, loss_since_log, steps_since_log = now, 0, 0.0, 0
            if rank == 0 and (
                stop
                or step == total
                or (config.run.checkpoint_every and step % config.run.checkpoint_every == 0)
            ):
                _save_checkpoint(
                    model,
                    optimizer,
                    {
                        "step": step,
                        "epoch": epoch,
                        "steps_per_epoch": steps_per_epoch,
                        "seed": config.run.seed,
                        "world_size": world,
                    },
                    out,
                    config.run.keep_checkpoints,
                )
            if (
                rank == 0
                and config.data.eval
                and config.run.eval_every
                and step % config.run.eval_every == 0
                and step != total
                and not stop
            ):
                metrics.write(_evaluate(model, config, step))
            if stop:
                log.info("time budget of %.0f s reached at step %d", o.max_seconds, step)
                break
        del batches, loader
    final = out / "final"
    if rank == 0:
        model.eval()
        model.save_pretrained(final)
        if config.data.eval:
            metrics.write(_evaluate(model, config, step))
    if world > 1:
        torch.distributed.barrier()
    return final


def train_from_config(path: Path | str, overrides: Sequence[str]) -> str:
    """`sgpipe train CONFIG --set k=v`: returns a summary line for the CLI."""
    config = load_train_config(path, overrides)
    final = train(config)
    lines = [f"verifier checkpoint: {final}"]
    metrics_path = Path(config.run.out) / "metrics.jsonl"
    if metrics_path.is_file():
        evals = [json.loads(line) for line in metrics_path.read_text().splitlines() if '"eval"' in line]
        if evals:
            lines.append("held-out: " + json.dumps(evals[-1]["eval"], sort_keys=True))
    lines.append(f"use it with: sgpipe run RECIPE --set verify.enabled=true --set verify.checkpoint={final}")
    return "\n".join(lines)
