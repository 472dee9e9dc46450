# The two commands of the README:
#   make review   check every built-in design, render the diagrams, write the review
#   make test     mypy --strict, ruff, the import-layer contracts, the docs build and the
#                 whole test suite (about 3.5 minutes on a quiet 2-core machine)
# Also: make docs (the documentation site into site/), make bench (about 17 minutes).
# Both create or update .venv, install the project with its extras and make
# sure Graphviz's `dot` exists; `make test` also installs headless Chromium and its
# driver for the browser test of review.html (skipped, with the reason, without them).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: review test lint typecheck pytest docs bench clean deps graphviz chromium screenshot spin drivers

review: deps
	$(BIN)/fsm review
	-$(MAKE) --no-print-directory screenshot

# The first screen of the review, as the README shows it (needs Chromium).
screenshot: chromium
	$(BIN)/python tests/browser.py diagrams/review.html diagrams/review-screenshot.png

test: deps typecheck lint docs pytest

# The documentation site (MkDocs): a broken link or a missing API reference fails.
docs: deps
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

typecheck: deps
	$(BIN)/mypy

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Bytecode is cached (in __pycache__, ignored by git) even where the environment sets
# PYTHONDONTWRITEBYTECODE: many tests start fsm or pytest in a child process, and
# each would otherwise compile fsm and rewrite the assertions of pytest's plugins.
pytest: deps chromium
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest

bench: deps
	$(BIN)/python benchmarks/explore.py
	$(BIN)/python benchmarks/explorer_versions.py
	$(BIN)/python benchmarks/testgen.py
	$(BIN)/python benchmarks/monitor.py
	$(BIN)/python benchmarks/socketio_suites.py

deps: $(STAMP) graphviz spin drivers

# The socket.io driver's real libraries (socket.io-client 4.7.5 and 4.8.x, the
# socket.io server, fake timers), pinned by its lock file.
NODE_STAMP := drivers/socketio/node_modules/.installed

drivers: $(NODE_STAMP)

$(NODE_STAMP): drivers/socketio/package.json drivers/socketio/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Node.js and npm with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  else \
	    echo "npm is missing (Debian/Ubuntu: sudo apt-get install nodejs npm)"; exit 1; \
	  fi; }
	cd drivers/socketio && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,reference,docs]'
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

# Debian's Chromium and chromium-driver, for the browser test (as root, like Graphviz);
# without them that one test is skipped and says why.
chromium:
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Chromium and chromium-driver with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
	      || echo "could not install Chromium: the browser test will be skipped"; \
	  else \
	    echo "Chromium is missing: the browser test will be skipped (Debian/Ubuntu: sudo apt-get install chromium chromium-driver)"; \
	  fi; }

# SPIN, the second engine (`fsm check --engine spin`); its tests are skipped
# with the reason where it cannot be installed.
spin:
	@command -v spin >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing SPIN with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq spin >/dev/null || \
	      echo "could not install spin: the SPIN engine's tests will be skipped"; \
	  else \
	    echo "SPIN is missing (Debian/Ubuntu: sudo apt-get install spin): its tests will be skipped"; \
	  fi; }

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis site drivers/socketio/node_modules
