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

.PHONY: demo test lint bench install lock test-latest clean

$(STAMP): pyproject.toml $(LOCK)
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check --disable-pip-version-check
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tokenbook demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy tokenbook bench tests

test: $(STAMP) lint
	$(BIN)/pytest -q

# Re-resolve the lock from pyproject.toml's ranges (newest allowed versions), with hashes.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes --upgrade \
		--custom-compile-command "make lock" --quiet -o $(LOCK)

# The suite on the newest versions the ranges allow, in a separate venv; it may fail when upstream
# changes, which is what it is for.
test-latest:
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade -e '.[dev]'
	$(LATEST)/bin/python -m pip list --disable-pip-version-check --format=freeze > $(LATEST)/versions.txt
	$(LATEST)/bin/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(LATEST) build *.egg-info tokenbook-data
