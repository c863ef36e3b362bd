# hexcast: two commands. `make run` starts the stack with demo data; `make test` checks everything.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit integration bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,analysis]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hexcast up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy hexcast streams targeting scheduler sender providersim analysis
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

integration: $(STAMP)
	$(BIN)/pytest tests/integration -q

test: $(STAMP) lint
	$(BIN)/pytest tests -q -p no:cacheprovider --durations=40

# Quick check (< 3 min): `make bench`; full size: `make bench BENCH_ARGS="--recipients 5000000"`.
BENCH_ARGS ?= --recipients 100000
bench: $(STAMP)
	$(BIN)/python -m bench all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .hexcast *.egg-info .pytest_cache .mypy_cache .ruff_cache
