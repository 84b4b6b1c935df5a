# One entry point: `make demo` (install + offline demo) and `make test` (install + tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sgpipe-installed

.PHONY: install demo test test-all bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/sgpipe demo --out demo-out

# The venv's bin on PATH: tests run its tools (hadolint, sgpipe) as a user of the venv would.
TEST_ENV := PATH="$(abspath $(BIN)):$$PATH" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 RAY_AUTH_MODE=disabled

test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q -m "not gpu"

# The CPU benchmarks at small sizes, a few minutes in all: a smoke run, not the figures of
# docs/BENCHMARKS.md (each script's docstring gives the sizes those come from). bench_parse.py needs
# the FACTUAL data set; gpu_*.py need a GPU (`--quick` runs them tiny on a CPU).
BENCH := HF_HUB_OFFLINE=1 RAY_AUTH_MODE=disabled $(BIN)/python benchmarks
bench: $(STAMP)
	$(BENCH)/bench_decode.py --rounds 3
	$(BENCH)/bench_inputs.py --images 8
	$(BENCH)/bench_io.py --samples 200 --samples-per-shard 100
	$(BENCH)/bench_index.py --images 2000 --boxes 20000
	$(BENCH)/bench_tag_synth.py --images 30
	$(BENCH)/bench_recipes_synth.py --quick --work /tmp/sgpipe-bench-recipes
	$(BENCH)/bench_pipeline.py --images 128
	$(BENCH)/bench_webdataset_source.py --tars 2 --per-tar 100 --rounds 3

clean:
	rm -rf demo-out .pytest_cache build dist *.egg-info
