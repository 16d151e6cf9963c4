# The two commands of the README: `make demo` (install + main job) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo serve test lint typecheck ci bench bench-serve clean

$(BIN)/xinyong: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/xinyong

demo: install
	$(BIN)/xinyong demo

# The HTTP API and the pages on the demo registry (made by `make demo`), with one
# demo principal per role whose keys are printed (shown once, stored only hashed).
serve: install
	test -f xinyong.duckdb || $(BIN)/xinyong demo
	$(BIN)/xinyong serve --demo-keys

test: install
	$(BIN)/pytest -q -n 2 --dist loadfile

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install
	$(BIN)/mypy

ci: test lint typecheck

bench: install
	$(BIN)/python benchmarks/run.py --persons 100000

bench-serve: install
	$(BIN)/python benchmarks/serve_load.py --db xinyong.duckdb --city out/city

clean:
	rm -rf $(VENV) out xinyong.duckdb xinyong.duckdb.wal
