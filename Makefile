# hexcast: two commands. `make run` starts the stack with demo data; `make test` checks everything.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit integration bench clean deps

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,analysis]'
	touch $(STAMP)

# Debian packages the stack and the tests run: chromium (the console's browser tests), Prometheus
# with promtool and Alertmanager with amtool (`hexcast up` starts them; the alerting tests run
# them), docker-compose 1.29 (tests/integration/test_compose.py validates docker-compose.yml with
# `docker-compose config`, no Docker daemon needed). Installed with apt-get, as root, only when
# one of the binaries is missing.
DEBIAN_PACKAGES := chromium prometheus prometheus-alertmanager docker-compose
DEBIAN_BINARIES := /usr/bin/chromium /usr/bin/prometheus /usr/bin/promtool \
	/usr/bin/prometheus-alertmanager /usr/bin/amtool /usr/bin/docker-compose

deps:
	@missing=""; for bin in $(DEBIAN_BINARIES); do test -x $$bin || missing="$$missing $$bin"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "missing:$$missing; installing the Debian packages $(DEBIAN_PACKAGES)"; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "make deps: apt-get needs root: run 'sudo make deps' (or install $(DEBIAN_PACKAGES) yourself)" >&2; \
		exit 1; \
	fi; \
	apt-get update && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(DEBIAN_PACKAGES)

run: deps $(STAMP)
	$(BIN)/hexcast up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy hexcast streams targeting scheduler sender providersim analysis
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

integration: deps $(STAMP)
	$(BIN)/pytest tests/integration -q

test: deps $(STAMP) lint
	$(BIN)/pytest tests -q -p no:cacheprovider --durations=40

# Quick check (< 3 min): `make bench`; full size: `make bench BENCH_ARGS="--recipients 5000000"`.
BENCH_ARGS ?= --recipients 100000
bench: $(STAMP)
	$(BIN)/python -m bench all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .hexcast *.egg-info .pytest_cache .mypy_cache .ruff_cache
