"""The output folder: committing shards (`writer.py`), the run-level files rebuilt from them
(`finalize.py`, `runinfo.py`) and the guards of a folder a run writes into (`guards.py`, with
`lease.py` on object stores); every file goes through `atomic.py`."""
