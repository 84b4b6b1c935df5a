"""The source: COCO-format annotation files -> deterministic, sharded `ImageEntry` plans -> decoded samples."""
