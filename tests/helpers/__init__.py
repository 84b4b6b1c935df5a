"""Shared test helpers; a test builds what it needs from these rather than its own copy.

- `samples.build_sample`: every test's `Sample`, keyed as the pipeline keys it
- `images`: every small test image (a seeded pattern, as JPEG bytes or a file)
- `stages.run_stage`: one stage through setup, batches and teardown
- `tiny_models`: BLIP and verifier built from configs with random weights (no download); the
  session fixtures `tiny_blip` and `tiny_verifier` in `tests/conftest.py` build each once
- `coco_fixture`, `tiny_shards`, `train_shards`: a tiny COCO dataset, sgpipe output folders, trainer shards
- `runs`: run configs and stage factories for end-to-end runs; `schemas`: the contract's JSON schemas
- `cli_runs`: `sgpipe run` in this process or in one of its own (kill, signal), a stage factory injected;
  `outputs`: an output folder's shard bytes and complete shards
- `rlipv2_reader`, `rlipv2_corpus`: RLIPv2's file reading, and the corpus its loaders' fixture was made from
"""
