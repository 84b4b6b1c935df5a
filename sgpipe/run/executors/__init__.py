"""Executors run a run's shards; the lifecycle (`sgpipe.run.lifecycle`) picks one
(`run.executor`, `sgpipe.run.layout.choose_executor`) and the `Supervisor` judges every outcome.

The protocol is small: `Executor(config, job, stage_factory).run(supervisor)` takes shards from
`supervisor.next()`, runs each through a `ShardProcessor`, reports each attempt (`done`, `failed`,
`output_fault`), sets `supervisor.halt` to a function that stops the work in flight and returns the
shards it held, and ends with `supervisor.finish()`.

- `local.LocalExecutor`: in this process, no Ray.
- `ray.RayExecutor`: a supervised pool of Ray actors, flat or in device pools; the only code that
  imports Ray.
"""
