# The two commands of the README:
#   make review   check every built-in design, render the diagrams, write the review
#   make test     mypy --strict, ruff, the import-layer contracts and the whole test suite
# Both create or update .venv, install the project with its extras and make
# sure Graphviz's `dot` exists.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: review test lint typecheck pytest bench clean deps graphviz

review: deps
	$(BIN)/fsm review

test: deps typecheck lint pytest

typecheck: deps
	$(BIN)/mypy

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

pytest: deps
	$(BIN)/python -m pytest

bench: deps
	$(BIN)/python benchmarks/explore.py
	$(BIN)/python benchmarks/testgen.py

deps: $(STAMP) graphviz

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Graphviz (dot) with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; \
	  else \
	    echo "Graphviz's dot is missing: install it (Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew install graphviz)"; \
	    exit 1; \
	  fi; }

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
