# The two commands of the README: `make demo` (install + main job) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint typecheck ci bench clean

$(BIN)/xinyong: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/xinyong

demo: install
	$(BIN)/xinyong demo

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install
	$(BIN)/mypy

ci: test lint typecheck

bench: install
	$(BIN)/python benchmarks/run.py --persons 100000

clean:
	rm -rf $(VENV) out xinyong.duckdb xinyong.duckdb.wal
