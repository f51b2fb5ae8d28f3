# The README's commands. Each installs what is missing first, so a fresh clone needs only Python 3.11+.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean bench-ledger bench-fraud bench-payments bench-recon bench-wallet bench-analytics demo chaos

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: set PYTHON=/path/to/python3.11 and run again")'
	@test -x $(PY) || { echo ">> creating virtualenv in $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo ">> installing dependencies (first run takes a minute)"
	@$(PY) -m pip install --disable-pip-version-check --progress-bar off -q --upgrade pip
	@$(PY) -m pip install --disable-pip-version-check --progress-bar off -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m stack run

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench-ledger: $(STAMP)
	$(PY) -m bench.ledger $(BENCH_ARGS)

bench-recon: $(STAMP)
	$(PY) -m bench.recon $(BENCH_ARGS)

bench-analytics: $(STAMP)
	$(PY) -m bench.analytics $(BENCH_ARGS)

bench-fraud: $(STAMP)
	$(PY) -m bench.fraud $(BENCH_ARGS)

bench-payments: $(STAMP)
	$(PY) -m bench.payments $(BENCH_ARGS)

bench-wallet: $(STAMP)
	$(PY) -m bench.wallet $(BENCH_ARGS)

demo: $(STAMP)
	$(PY) -m demo $(DEMO_ARGS)

chaos: $(STAMP)
	$(PY) -m bench.chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .data
