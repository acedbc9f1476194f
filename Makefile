# Two entry points for a new user: `make demo` and `make test` (both set up first).
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
MODEL := models/conformer_ctc_base
DEMO_SEED ?= 2026

.PHONY: setup demo test test-slow

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

# Until the search lands, the demo synthesises a fresh small benchmark (a seed the model
# never saw) and evaluates the shipped base model on its held-out-voice test split.
demo: setup
	$(BIN)/asrcompress corpus --out data/demo --size small --seed $(DEMO_SEED)
	$(BIN)/asrcompress evaluate --model $(MODEL) --manifest data/demo/test.jsonl
	$(BIN)/asrcompress evaluate --model $(MODEL) --manifest data/demo/test.jsonl --decoder greedy

test: setup
	$(BIN)/python -m pytest -q --durations=10

test-slow: setup
	$(BIN)/python -m pytest -q -m slow
