"""sgpipe: object-detection datasets -> grounded, verified scene-graph corpora in WebDataset shards."""

__version__ = "0.1.0"
