"""`sgpipe reverify OUT --checkpoint DIR --out NEW`: re-score existing shards with another verifier
checkpoint, without decoding sources, captioning, parsing or tagging again.

Only the relations an earlier run stored exist in its shards (those at or above its
`verify.store_threshold`; all candidates when it ran without the verifier), so reverify rescores
those stored candidates: a new checkpoint can lower or raise their confidences and drop them, but
cannot bring back candidates the earlier run discarded. Failed rows of the parquet carry over.
Shards already complete in NEW are skipped, so an interrupted reverify resumes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from sgpipe.config import VerifyConfig, _coerce, parse_override
from sgpipe.errors import OK, ConfigError, SgpipeError
from sgpipe.records import Sample
from sgpipe.shards import iter_shard_samples
from sgpipe.vocab.rlipv2 import VOCABULARIES as RLIPV2_TABLES
from sgpipe.vocab.rlipv2 import is_table_file

ALLOWED = ("store_threshold", "keep_threshold", "batch_size", "dtype", "assignment", "texts", "device")


def _verify_config(checkpoint: Path, overrides: Sequence[str]) -> tuple[VerifyConfig, str]:
    config = VerifyConfig(enabled=True, checkpoint=str(checkpoint))
    device = "auto"
    problems: list[str] = []
    for text in overrides:
        keys, value = parse_override(text)
        name = ".".join(keys)
        if len(keys) != 2 or keys[0] not in ("verify", "run") or keys[1] not in ALLOWED:
            problems.append(
                f"override {name!r}: reverify takes verify.{{{','.join(ALLOWED[:-1])}}} and run.device"
            )
            continue
        if keys[1] == "device":
            device = str(value)
            continue
        kind = type(getattr(config, keys[1]))
        coerced = _coerce(value, kind, name, problems)
        if coerced is not None:
            setattr(config, keys[1], coerced)
    if config.keep_threshold < config.store_threshold:
        problems.append("verify.keep_threshold is below verify.store_threshold")
    if config.assignment not in ("candidates", "all_pairs"):
        problems.append(f"verify.assignment {config.assignment!r}: choose from candidates, all_pairs")
    if config.texts not in ("image", "rlipv2"):
        problems.append(f"verify.texts {config.texts!r}: choose from image, rlipv2")
    if problems:
        raise ConfigError(problems)
    return config, device


def _shard_samples(tar: Path) -> tuple[list[Sample], dict]:
    """The shard's entries in parquet order (ok ones rebuilt from the tar, failed ones from their
    row) and the records' provenance."""
    from PIL import Image

    by_key: dict[str, Sample] = {}
    provenance: dict = {}
    for item in iter_shard_samples([str(tar)]):
        if item.image_bytes is None:
            raise SgpipeError(
                f"{tar} holds no images (written with output.images false): reverify needs them"
            )
        sample = Sample.from_record(item.record)
        sample.image_bytes, sample.image_ext = item.image_bytes, item.image_ext or "jpg"
        sample.image = Image.open(io.BytesIO(item.image_bytes)).convert("RGB")
        by_key[sample.key] = sample
        provenance = item.record.get("provenance", provenance)
    parquet = tar.with_suffix(".parquet")
    rows = (
        pq.read_table(parquet).to_pylist()
        if parquet.is_file()
        else [{"key": k, "status": OK} for k in by_key]
    )
    samples = []
    for row in rows:
        if row["status"] == OK:
            sample = by_key[row["key"]]
        else:
            dataset = row["key"].rsplit("-", 1)[0]
            sample = Sample(
                key=row["key"],
                dataset=dataset,
                image_id=row["image_id"],
                file_name=row["file_name"],
                width=0,
                height=0,
            )
            sample.fail(row["status"], row["error_message"])
        samples.append(sample)
    return samples, provenance


def reverify(out: Path, checkpoint: Path, new_out: Path, overrides: list[str]) -> str:
    """Re-score every shard of OUT into NEW; returns a summary for the CLI."""
    from sgpipe.output.atomic import write_json_atomic
    from sgpipe.output.finalize import finalize_outputs, now_iso
    from sgpipe.output.writer import is_shard_complete, write_shard
    from sgpipe.stages.verify import VerifyStage

    out, new_out = Path(out), Path(new_out)
    if out.resolve() == new_out.resolve():
        raise SgpipeError("reverify writes a new folder: --out must differ from OUT")
    tars = sorted(p for p in out.glob("[0-9][0-9][0-9][0-9][0-9].tar"))
    if not tars:
        raise SgpipeError(f"no shards in {out}")
    config, device = _verify_config(checkpoint, overrides)
    run_path = out / "run.json"
    run = json.loads(run_path.read_text()) if run_path.is_file() else {}
    # verify.texts rlipv2 reads RLIPv2's category table of the run that tagged the candidates
    vocabulary = ((run.get("config") or {}).get("tag") or {}).get("vocabulary", "coco")
    if vocabulary not in RLIPV2_TABLES and not is_table_file(vocabulary):
        vocabulary = "coco"
    stage = VerifyStage(config, device=device, vocabulary=vocabulary)
    stage.setup()
    verifier = stage.describe()
    dataset, done, before, after, kept = "", 0, 0, 0, 0
    for tar in tars:
        index = int(tar.stem)
        if is_shard_complete(new_out, index):
            continue
        samples, provenance = _shard_samples(tar)
        dataset = dataset or (samples[0].dataset if samples else "")
        before += sum(len(s.relations) for s in samples)
        stage(samples)
        after += sum(len(s.relations) for s in samples if s.ok)
        kept += sum(1 for s in samples if s.ok for r in s.relations if r.kept)
        models = dict(provenance.get("models", {}))
        models["verify"] = verifier
        write_shard(new_out, index, samples, {**provenance, "models": models})
        done += 1
    stage.teardown()
    stats = finalize_outputs(new_out, dataset or "unknown")
    run["reverify"] = {"source": str(out), "verifier": verifier, "ended": now_iso()}
    run["thresholds"] = {"store": config.store_threshold, "keep": config.keep_threshold}
    run.setdefault("models", {})["verifier"] = str(checkpoint)
    run["totals"] = {**stats["totals"], "shards": stats["shards"], "status": stats["status"]}
    write_json_atomic(new_out / "run.json", run)
    return (
        f"re-scored {done} shards ({len(tars) - done} already done) with {checkpoint}: "
        f"{before} stored relations -> {after} at confidence >= {config.store_threshold}, "
        f"{kept} kept (>= {config.keep_threshold}); "
        f"wrote {new_out}"
    )
