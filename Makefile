# Two entry points for a new user: `make demo` and `make test` (both set up first).
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
MODEL := models/conformer_ctc_base
DEMO_SEED ?= 2026
DEMO_TRIALS ?= 40

.PHONY: setup demo test test-slow test-reliability bench bench-quick

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh
	touch $@

# The main job on the built-in benchmark: synthesise a small corpus (a seed the model never
# saw), run the staged search of spaces/quick.yaml (sensitivity scan, surrogate study, candidates
# scored in ONNX, finalists recovered by successive halving, timed with the base and reported on
# test), print the front, export its knee. Re-running resumes from the last finished stage.
# The one-stage search (every trial distilled): DEMO_STRATEGY=one-stage.
DEMO_STRATEGY ?= staged
ifeq ($(DEMO_STRATEGY),one-stage)
DEMO_BUDGET := --strategy one-stage --trials $(DEMO_TRIALS) --workers 2 --kd-utterances 300
else
DEMO_BUDGET := --proposals 500 --candidates 6 --rungs 30,90,180 --kd-utterances 400
endif
demo: setup
	test -f data/demo/test.jsonl || $(BIN)/asrcompress corpus --out data/demo --size small --seed $(DEMO_SEED)
	$(BIN)/asrcompress search --space spaces/quick.yaml --model $(MODEL) --corpus data/demo --study demo \
		--dev-utterances 60 $(DEMO_BUDGET)
	$(BIN)/asrcompress export --study demo --pick knee --out runs/demo-knee
	@echo "Browse the trials: $(BIN)/asrcompress ui --study demo  (prints a link that opens the Pareto front)"
	@echo "or: $(BIN)/asrcompress dashboard --study demo  (optuna-dashboard on 127.0.0.1:8080)"

test: setup
	$(BIN)/python -m pytest -q --durations=10

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

# The long tests: end-to-end runs of the Python API quickstart, the toy method and objective
# through a search and an export, and compress against a trial (bit-identical weights); and the
# reliability tests: SIGKILL of a worker process, of a worker on another host (journal
# and PostgreSQL heartbeats) and of a Ray node, 4 concurrent workers on journal and PostgreSQL
# storage, kill -9 of the long writers (train, export, corpus, calibrate), the wheel installed
# outside the repository, the MLflow UI (and the Pareto-front link it prints) and optuna-dashboard
# in headless Chromium; the one-stage search's two-worker run (MLflow, front, export, live log)
# and its resume after kill -9. (The fast suite kills the driver and the short writers, and
# injects raising, NaN and timed-out trials.) Also the surrogate's .onnx
# pricing of two cuts on one layer, the finalists command and the staged search from one command
# (resume from each stage, front, MLflow, export of the knee); a Hugging Face CTC folder through
# layers, compress, evaluate, export-onnx, latency, finalize --lm-text, a 2-trial search and export.
test-reliability: setup
	$(BIN)/python -m pytest -q -m slow --durations=10 tests/search/test_faults.py tests/test_outputs.py \
		tests/test_wheel.py tests/search/test_ray.py \
		tests/test_ui_browser.py tests/test_cli.py \
		tests/test_api.py tests/test_extensions.py tests/search/test_search.py \
		tests/bench/test_bench.py::test_quick_bench_runs_end_to_end_and_resumes \
		tests/search/test_surrogate.py tests/search/test_finalists.py tests/search/test_staged.py \
		tests/test_hf_cli.py tests/models/test_hf.py

# The evidence (docs/benchmarks.md): search vs random vs uniform policies vs peer tools, side by
# side. Peers (INC, NNCF, AIMET, Olive) live in .venv-peers. The search arms run the staged search
# on the levers space (NSGA-II against random proposals, 3 seeds); BENCH_ARGS replaces the flags,
# e.g. "--strategy one-stage --budget-minutes 20" for the earlier arms. Re-running resumes the run.
BENCH_ARGS ?= --space levers
bench: setup
	bash scripts/setup_peers.sh
	$(BIN)/asrcompress bench $(BENCH_ARGS)

bench-quick: setup
	bash scripts/setup_peers.sh
	$(BIN)/asrcompress bench --quick
