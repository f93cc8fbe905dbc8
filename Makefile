# tagloop: the two commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKSPACE ?= demo-workspace
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install lint typecheck pytest bench demo clean screenshots

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Set up everything (venv, package, demo workspace with its data) and start the server.
run: install
	$(BIN)/tagloop demo $(WORKSPACE)
	$(BIN)/tagloop --workspace $(WORKSPACE) serve

# Set up the same and run the whole suite: lint, types, tests.
test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest --durations=15

bench: install
	$(BIN)/python bench/ingest.py

# Screenshots of each console page at 1440x900 into docs/screenshots/ (Chromium headless
# on the demo workspace; `apt-get install chromium fonts-wqy-microhei` if missing).
screenshots: install
	$(BIN)/tagloop demo $(WORKSPACE)
	$(BIN)/python scripts/screenshots.py --workspace $(WORKSPACE)

clean:
	rm -rf $(VENV) $(WORKSPACE) .pytest_cache .mypy_cache .ruff_cache .hypothesis
