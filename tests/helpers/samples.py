"""The one `Sample` builder of the tests: the key the pipeline would give, anything else by name."""

from __future__ import annotations

from typing import Any

from sgpipe.records import Sample, sample_key


def build_sample(image_id: int, dataset: str = "t", **fields: Any) -> Sample:
    """A sample of `dataset` keyed as the pipeline keys it; `fields` set any other `Sample` field
    (file name `{image_id}.jpg` and 64x48 unless given)."""
    fields.setdefault("file_name", f"{image_id}.jpg")
    fields.setdefault("width", 64)
    fields.setdefault("height", 48)
    return Sample(key=sample_key(dataset, image_id), dataset=dataset, image_id=image_id, **fields)
