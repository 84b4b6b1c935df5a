"""What a worker reads for one shard: its image entries, and the image bytes a source carries itself.

- coco: the shard's entry file; images are read by name in the decode stage.
- folder: the shard's entry file, and the alt-text files beside its images (fetched here, together:
  one batched request on an object store); images are read by name in the decode stage.
- webdataset: the shard's tar (the plan's Nth input), streamed once; items come with their image bytes.
"""

from __future__ import annotations

import logging
from typing import Iterator

from sgpipe.config import SourceConfig
from sgpipe.records import ImageEntry
from sgpipe.source.items import alt_text_caption
from sgpipe.source.plan import SourcePlan, read_plan, read_shard_entries
from sgpipe.source.webdataset import read_tar
from sgpipe.storage import Location, RemotePath, location, read_all

log = logging.getLogger(__name__)
ShardItem = tuple[ImageEntry, "bytes | None"]


class ShardReader:
    """Reads shards of one planned source; the plan manifest is read once, on the first tar shard."""

    def __init__(self, source: SourceConfig, plan_dir: Location, alt_texts: bool = True):
        self.source = source
        self.plan_dir = plan_dir
        self.alt_texts = alt_texts  # a folder's alt-text files are read (not for leakage)
        self._plan: SourcePlan | None = None

    def items(self, index: int) -> Iterator[ShardItem]:
        if self.source.kind == "webdataset":
            if self._plan is None:
                self._plan = read_plan(self.plan_dir)
            url, limit = self._plan.inputs[index], self._plan.shard_sizes[index]
            for item in read_tar(url, self.source.storage_options, limit):
                yield item.entry, item.image
            return
        entries = read_shard_entries(self.plan_dir, index)
        if self.source.kind == "folder" and self.alt_texts:
            self._attach_alt_texts(entries)
        for entry in entries:
            yield entry, None

    def _attach_alt_texts(self, entries: list[ImageEntry]) -> None:
        root = location(self.source.images, self.source.storage_options)
        wanted = [e for e in entries if e.alt_text_file]
        for entry, data in zip(wanted, _read_texts(root, [e.alt_text_file for e in wanted])):
            if data is None:
                entry.counters["source_alt_text_unreadable"] = 1
                continue
            caption = alt_text_caption(data, entry.counters)
            entry.captions = [caption] if caption is not None else []


def _read_texts(root: Location, names: list[str]) -> list[bytes | None]:
    """The files' bytes, None for one that cannot be read (gone since planning, say)."""
    if isinstance(root, RemotePath):
        try:
            return list(read_all([root / name for name in names]))
        except OSError as error:  # one missing file fails the batch: fetch them one by one
            log.warning("alt texts: batched read failed (%s); reading one by one", error)
    found: list[bytes | None] = []
    for name in names:
        try:
            found.append((root / name).read_bytes())
        except OSError:
            found.append(None)
    return found
