# The project's entry points. `make run` and `make test` do all set-up themselves.
#   make run    - the main job, end to end on the sample CT
#   make test   - every test (parity fixtures are regenerated first)
#   make bench  - the model benchmarks of bench/ (writes bench/results/)
RADSAM_CACHE ?= $(HOME)/.cache/radsam
VENV := $(RADSAM_CACHE)/venv
export RADSAM_CACHE
export LIBTORCH_USE_PYTORCH := 1
export PYTHON := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)
# cargo's build outputs live in the cache, outside the clone, so fresh clones build incrementally.
export CARGO_TARGET_DIR ?= $(RADSAM_CACHE)/target
CARGO := cargo

.PHONY: setup build run test bench parity-fixtures
setup:
	bash scripts/setup.sh

build: setup
	$(CARGO) build --release

run: build
	bash scripts/run_sample.sh

parity-fixtures: setup
	$(PYTHON) scripts/parity_reference.py
	$(PYTHON) scripts/volume_reference.py

test: build parity-fixtures
	$(CARGO) test --release -- --test-threads=1

bench: build
	bash bench/run_model_bench.sh
