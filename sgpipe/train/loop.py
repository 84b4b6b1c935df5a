"""The training loop over `TrainConfig`: a recipe of short steps (setup, resume, loader, step,
log / checkpoint / eval, finish).

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
from sgpipe.models.device import resolve_device
from sgpipe.train.config import TrainConfig, dump_config, load_train_config

log = logging.getLogger(__name__)
STATE_NAME = "trainer_state.json"
OPTIMIZER_NAME = "optimizer.pt"
RNG_NAME = "rng_state.pt"  # dropout draws continue as in an uninterrupted run


def _distributed() -> tuple[int, int, int]:
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))


def _device(name: str, local_rank: int) -> torch.device:
    if resolve_device(name) == "cuda":
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


class _Recipe:
    """One training run in the shape of a torchtune recipe: the constructor sets up the runtime,
    the resume point, the model and optimizer, the schedule and the outputs, in that order (the
    order fixes the RNG draws, so a resumed run matches an uninterrupted one); `train()` then runs
    epochs of steps, logging, checkpointing and evaluating between them."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self._setup_runtime()
        self.resume_from = latest_checkpoint(self.out) if config.run.resume else None
        state = json.loads((self.resume_from / STATE_NAME).read_text()) if self.resume_from else {"step": 0}
        self.step = int(state["step"])
        self._setup_model()
        if self.resume_from is not None:
            self._restore(state)
        self._setup_schedule()
        self._setup_outputs()

    def _setup_runtime(self) -> None:
        from sgpipe.shards import expand_urls

        self.rank, self.world, self.local_rank = _distributed()
        self.device = _device(self.config.run.device, self.local_rank)
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.out = Path(self.config.run.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.urls = expand_urls(self.config.data.train, self.config.data.storage_options)
        if len(self.urls) < self.world:
            raise SgpipeError(
                f"{len(self.urls)} training shards for {self.world} ranks: reshard into at least one per "
                "rank (`sgpipe reshard`)"
            )

    def _setup_model(self) -> None:
        config = self.config
        torch.manual_seed(config.run.seed)
        self.model = _build_model(config, self.urls, self.resume_from).to(self.device).train()
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.trainable, lr=config.optim.lr, weight_decay=config.optim.weight_decay
        )

    def _restore(self, state: dict[str, Any]) -> None:
        """The optimizer's moments and the RNG state of the checkpoint being resumed."""
        assert self.resume_from is not None
        self.optimizer.load_state_dict(
            torch.load(self.resume_from / OPTIMIZER_NAME, map_location=self.device, weights_only=True)
        )
        rng = torch.load(self.resume_from / RNG_NAME, weights_only=True)
        torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"])
        log.info("resuming from %s at step %d", self.resume_from, state["step"])

    def _setup_schedule(self) -> None:
        d, o, world = self.config.data, self.config.optim, self.world
        self.network = self.model
        if world > 1:
            self.network = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.local_rank] if self.device.type == "cuda" else None
            )
        per_step = d.batch_size * o.grad_accum
        samples = 0 if o.steps_per_epoch else _count_samples(self.urls, d.storage_options)
        self.steps_per_epoch = o.steps_per_epoch or max(1, samples // (world * per_step))
        self.total = o.max_steps or o.epochs * self.steps_per_epoch
        # an idle loader worker would break the round-robin over shards
        self.workers = min(d.num_workers, max(1, len(self.urls) // world))
        dtype, on_cuda = self.config.run.dtype, self.device.type == "cuda"
        self.autocast_dtype = torch.bfloat16 if dtype == "bfloat16" or (dtype == "auto" and on_cuda) else None

    def _setup_outputs(self) -> None:
        self.metrics = _Metrics(self.out / "metrics.jsonl", self.rank == 0)
        if self.rank == 0 and self.resume_from is None and self.metrics.path.exists():
            self.metrics.path.unlink()  # a fresh run: metrics of an earlier one in this folder would mislead
        if self.rank == 0:
            (self.out / "train_config.yaml").write_text(dump_config(self.config))

    def train(self) -> Path:
        self.started = self.last_log = time.perf_counter()
        self.images_since_log, self.loss_since_log, self.steps_since_log = 0, 0.0, 0
        stop = False
        while self.step < self.total and not stop:
            epoch, in_epoch = divmod(self.step, self.steps_per_epoch)
            stop = self._train_epoch(epoch, in_epoch)
        return self._finish()

    def _loader(self, epoch: int, in_epoch: int) -> Any:
        """The epoch's data, the batches already trained on skipped."""
        from torch.utils.data import DataLoader

        from sgpipe.train.data import ShardStream, stable_seed

        d, seed = self.config.data, self.config.run.seed
        stream = ShardStream(
            self.urls,
            rank=self.rank,
            world_size=self.world,
            seed=seed,
            epoch=epoch,
            batch_size=d.batch_size,
            image_size=self.model.config.image_size,
            frequencies=self.model.config.predicate_frequencies,
            shuffle_buffer=d.shuffle_buffer,
            skip_batches=in_epoch * self.config.optim.grad_accum,
            passes=None,
            example_args={
                "min_confidence": d.min_confidence,
                "max_negative_confidence": d.max_negative_confidence,
                "negative_predicates": d.negative_predicates,
                "negative_pairs": d.negative_pairs,
                "max_pairs": d.max_pairs,
            },
            storage_options=d.storage_options,
        )
        # its own generator: starting a loader must not draw from the RNG that dropout uses
        return DataLoader(
            stream,
            batch_size=None,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if self.workers else None,
            generator=torch.Generator().manual_seed(stable_seed(seed, epoch)),
        )

    def _train_epoch(self, epoch: int, in_epoch: int) -> bool:
        """Steps until the epoch, the step budget or the time budget ends; True when time ran out."""
        loader = self._loader(epoch, in_epoch)
        batches = iter(loader)
        stop = False
        while in_epoch < self.steps_per_epoch and self.step < self.total:
            lr, keys, step_loss = self._step(batches)
            in_epoch += 1
            stop = self._out_of_time()
            self._after_step(epoch, lr, keys, step_loss, stop)
            if stop:
                log.info("time budget of %.0f s reached at step %d", self.config.optim.max_seconds, self.step)
                break
        del batches, loader
        return stop

    def _step(self, batches: Any) -> tuple[float, list[str], float]:
        """One optimizer step over `grad_accum` micro-batches; returns its lr, sample keys and loss."""
        o = self.config.optim
        spent = (time.perf_counter() - self.started) / o.max_seconds if o.max_seconds else 0.0
        lr = lr_at(self.step, o.lr, o.warmup_steps, self.total, spent)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        keys: list[str] = []
        step_loss = 0.0
        for micro in range(o.grad_accum):
            batch = next(batches)
            keys.extend(batch["keys"])
            last = micro == o.grad_accum - 1
            sync = contextlib.nullcontext() if self.world == 1 or last else self.network.no_sync()
            with sync, torch.autocast(
                self.device.type,
                dtype=self.autocast_dtype or torch.float32,
                enabled=self.autocast_dtype is not None,
            ):
                loss = self.model.loss(self.network(batch), batch) / o.grad_accum
            loss.backward()
            step_loss += loss.item()
        if o.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.trainable, o.clip_grad)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return lr, keys, step_loss

    def _out_of_time(self) -> bool:
        """Whether `optim.max_seconds` is spent, agreed by every rank so that all stop at one step."""
        o = self.config.optim
        stop = bool(o.max_seconds and time.perf_counter() - self.started >= o.max_seconds)
        if self.world > 1:
            flag = torch.tensor([float(stop)], device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            stop = bool(flag.item())
        return stop

    def _after_step(self, epoch: int, lr: float, keys: list[str], step_loss: float, stop: bool) -> None:
        """Log, checkpoint and evaluate when this step is due for it."""
        run, step = self.config.run, self.step
        self.images_since_log += len(keys) * self.world
        self.loss_since_log += step_loss
        self.steps_since_log += 1
        if step % run.log_every == 0 or step == self.total or stop:
            self._log(epoch, lr, keys)
        if self.rank == 0 and (
            stop or step == self.total or (run.checkpoint_every and step % run.checkpoint_every == 0)
        ):
            self._checkpoint(epoch)
        due = run.eval_every and step % run.eval_every == 0
        if self.rank == 0 and self.config.data.eval and due and step != self.total and not stop:
            self.metrics.write(_evaluate(self.model, self.config, step))

    def _log(self, epoch: int, lr: float, keys: list[str]) -> None:
        now = time.perf_counter()
        rate = self.images_since_log / max(now - self.last_log, 1e-9)
        loss = self.loss_since_log / self.steps_since_log
        log.info(
            "step %d/%d epoch %d loss %.4f lr %.2e %.1f samples/s",
            self.step,
            self.total,
            epoch,
            loss,
            lr,
            rate,
        )
        self.metrics.write(
            {
                "step": self.step,
                "epoch": epoch,
                "loss": loss,
                "lr": lr,
                "samples_per_s": rate,
                "elapsed_s": now - self.started,
                "batch_keys_md5": hashlib.md5("\n".join(keys).encode()).hexdigest(),
            }
        )
        self.last_log, self.images_since_log, self.loss_since_log, self.steps_since_log = now, 0, 0.0, 0

    def _checkpoint(self, epoch: int) -> None:
        state = {
            "step": self.step,
            "epoch": epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "seed": self.config.run.seed,
            "world_size": self.world,
        }
        _save_checkpoint(self.model, self.optimizer, state, self.out, self.config.run.keep_checkpoints)

    def _finish(self) -> Path:
        """The final model (rank 0) and its evaluation; every rank waits for it."""
        final = self.out / "final"
        if self.rank == 0:
            self.model.eval()
            self.model.save_pretrained(final)
            if self.config.data.eval:
                self.metrics.write(_evaluate(self.model, self.config, self.step))
        if self.world > 1:
            torch.distributed.barrier()
        return final


def train(config: TrainConfig) -> Path:
    """Train the verifier; returns the folder of the final checkpoint (`OUT/final`)."""
    return _Recipe(config).train()


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
