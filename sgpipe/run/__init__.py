"""Running a recipe: the lifecycle of a run and the executors that do its shards.

lifecycle.run_pipeline: lock OUT (flock or lease), check the config hash (identity), preflight
    (paths, URLs, models), plan the source once (sources), pick shards (resume, --shards,
    --redo-failed: redo), write run.json, hand the shards to an executor, finalise
supervisor: attempts and retries (attempts), the error-rate stop, signals, output faults, the
    end-of-run paragraph, progress lines; no executor changes them
executors/local: shards in this process, no Ray      executors/ray: the only Ray code (flat or pools)
layout: which executor, how many actors of what size, from the table of stages (sgpipe.pipeline)
processor.ShardProcessor: one shard: samples -> stages in fixed chunks -> atomic shard
estimate, progress: what --dry-run and a running run say
reverify: re-scoring an earlier run's shards, through the same lifecycle
"""

from sgpipe.run.lifecycle import RunOptions, run_pipeline

__all__ = ["RunOptions", "run_pipeline"]
