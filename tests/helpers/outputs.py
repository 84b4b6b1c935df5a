"""Reading a local output folder in tests: the shards' bytes and how many shards are complete."""

from __future__ import annotations

from pathlib import Path


def shard_bytes(out: Path) -> dict[str, bytes]:
    """Name -> bytes of every `.tar` and `.parquet` directly in `out` (what byte-identity compares)."""
    return {p.name: p.read_bytes() for p in sorted(Path(out).iterdir()) if p.suffix in (".tar", ".parquet")}


def complete_shards(out: Path) -> int:
    """Shards with their completion marker (`_stats.json`, written last)."""
    return len(list(Path(out).glob("*_stats.json")))
