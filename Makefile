# Every target builds and uses .venv itself; nothing else needs to be installed but Python 3.11.
# Development and CI install exactly the versions in requirements/dev.lock (hash-checked), so a new
# upstream release never changes what a fresh clone runs. `make lock` re-resolves the lock on purpose;
# `make test-latest` runs the suite on the newest versions pyproject.toml allows, to find drift early.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements/dev.lock
LATEST := .venv-latest
# The workspace: one distribution per folder, installed editable (each adds its src/ to sys.path).
MEMBERS := genai processor collector cli
EDITABLE := $(foreach m,$(MEMBERS),-e ./$(m)) .

.PHONY: demo test test-fast lint bench install lock test-latest clean docs

# Python may write bytecode here even where the environment says not to: pytest then keeps the test
# modules it rewrote (their asserts) and Python the workspace's compiled modules in __pycache__/
# (ignored by git), which every pytest worker and every process a test starts would otherwise compile
# again (about 2.5 s per worker).
unexport PYTHONDONTWRITEBYTECODE

# The C sources are built by their distributions' installs (`make install` builds them again when they change).
NATIVE := collector/src/tokenbook/collector/decode/_walk.c processor/src/tokenbook/processor/_plain.c

$(STAMP): pyproject.toml $(foreach m,$(MEMBERS),$(m)/pyproject.toml) $(LOCK) $(NATIVE)
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation $(EDITABLE)
	$(BIN)/python -m pip check --disable-pip-version-check
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tokenbook demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy genai/src processor/src collector/src cli/src bench tests
	$(BIN)/lint-imports

# The whole suite: the in-process tests on up to 4 cores (pytest-xdist), with every arrival order of
# the conformance scenarios (--all-orders) and the Hypothesis properties' full example counts (the
# `ci` profile, tests/hypothesis_profiles.py), then the tests that start processes one at a time (they
# wait on collectors and clocks, and time out when they share cores).
test: $(STAMP) lint
	$(BIN)/pytest -q -m "not e2e" -n auto --maxprocesses 4 --all-orders --hypothesis-profile=ci
	$(BIN)/pytest -q -m e2e -n auto --hypothesis-profile=ci

# The inner loop: every test that starts no process, on every core (pytest-xdist), the Hypothesis
# properties with a fifth of their examples (the default `fast` profile).
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not e2e" -n auto --maxprocesses 4

# Re-resolve the lock from pyproject.toml's ranges (newest allowed versions), with hashes.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes --upgrade \
		$(foreach m,$(MEMBERS),--no-emit-package tokenbook-$(m)) \
		--custom-compile-command "make lock" --quiet -o $(LOCK)

# The suite on the newest versions the ranges allow, in a separate venv; it may fail when upstream
# changes, which is what it is for.
test-latest:
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade $(foreach m,$(MEMBERS),-e ./$(m)) -e '.[dev]'
	$(LATEST)/bin/python -m pip list --disable-pip-version-check --format=freeze > $(LATEST)/versions.txt
	$(LATEST)/bin/pytest -q -p no:cacheprovider -m "not e2e" -n auto --maxprocesses 4
	$(LATEST)/bin/pytest -q -p no:cacheprovider -m e2e -n 0

# The configuration reference, generated from the config classes (a test checks it is up to date).
docs: $(STAMP)
	$(BIN)/python -m tokenbook.cli.configdoc docs/reference/config.md

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(LATEST) build */build *.egg-info */src/*.egg-info tokenbook-data
	find collector/src processor/src -name '*.so' -delete
