"""`source.exclude`: the image ids a run leaves out, read from `sgpipe leakage --out` files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sgpipe.errors import SourceError
from sgpipe.storage import location


def exclusion_reason(match: dict) -> str:
    """The parquet row's `error_message` for an excluded image: how it matched and what."""
    how, against = match.get("how"), match.get("against")
    if how == "bytes":
        return f"evaluation image: same bytes as {against}"
    if how == "id":
        return f"evaluation image: same image id in {against}"
    if how == "phash":
        return f"evaluation image: perceptual hash {match.get('distance')} bits from {against}"
    return f"listed in source.exclude ({how or 'no reason given'})"


def load_exclusions(path: str | Path, options: dict[str, Any] | None = None) -> dict[int, str]:
    """Image id -> reason, from a JSON list of objects with an integer `image_id` (a local file or
    any fsspec URL, read with `options`)."""
    try:
        data = json.loads(location(path, options).read_bytes().decode("utf-8"))
    except OSError as error:
        why = error.strerror or f"{type(error).__name__}: {error}"
        raise SourceError(f"source.exclude {str(path)!r}: cannot read: {why}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SourceError(f"source.exclude {str(path)!r} is not valid JSON: {error}") from None
    if not isinstance(data, list):
        raise SourceError(
            f"source.exclude {str(path)!r}: expected a JSON list (as `sgpipe leakage --out` writes)"
        )
    excluded: dict[int, str] = {}
    for position, item in enumerate(data):
        image_id = item.get("image_id") if isinstance(item, dict) else None
        if not isinstance(image_id, int) or isinstance(image_id, bool) or image_id < 0:
            raise SourceError(
                f"source.exclude {str(path)!r}: item {position} has no non-negative integer "
                f"'image_id': {str(item)[:200]}"
            )
        excluded.setdefault(image_id, exclusion_reason(item))
    return excluded
