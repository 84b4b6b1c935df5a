"""The source: COCO-format annotation files -> sharded `ImageEntry` plans -> decoded samples."""
