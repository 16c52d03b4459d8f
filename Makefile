# gridbot: the two commands are `make run` and `make test`; both set up .venv when missing.
# `make test`: ruff, mypy, import-linter (the layers in pyproject.toml), then pytest.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/gridbot serve

test: $(STAMP)
	$(BIN)/ruff check bot handlers store tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check bot handlers store tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench
	$(BIN)/python -m benchmarks.bench_telegram
	$(BIN)/python -m benchmarks.bench_outbox
	$(BIN)/python -m benchmarks.bench_replies
	$(BIN)/python -m benchmarks.bench_open311
	$(BIN)/python -m benchmarks.bench_console
	$(BIN)/python -m benchmarks.bench_console_map
	$(BIN)/python -m benchmarks.bench_pg_drivers
	$(BIN)/python -m benchmarks.bench_postgres
	$(BIN)/python -m benchmarks.bench_console_stats

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
