# One task file: set up, run the series, test, open the notebooks.
#   make run   - set up .venv and run the notebook series headless on defaults
#   make test  - set up .venv and run lint, unit tests and the notebooks (nbval)
#   make lab   - set up .venv and open JupyterLab on notebooks/
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.emotune-installed
RUN_DIR ?=
RUN_ARGS ?=

.PHONY: setup run test lint unit notebooks lab bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --progress-bar off -e '.[dev]'
	touch $(STAMP)

run: setup
	$(BIN)/emotune run $(if $(RUN_DIR),--run-dir $(RUN_DIR)) $(RUN_ARGS)

lint: setup
	$(BIN)/ruff check .

unit: setup
	$(BIN)/python -m pytest tests

# Notebooks run in name order, one after another, on one fresh run directory.
notebooks: setup
	rm -rf runs/_nbval
	EMOTUNE_RUN_DIR=$(CURDIR)/runs/_nbval TQDM_DISABLE=1 PYTHONHASHSEED=0 \
		$(BIN)/python -m pytest --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg \
		-p no:cacheprovider notebooks

test: lint unit notebooks

lab: setup
	$(BIN)/jupyter lab notebooks/

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs/_nbval .pytest_cache

# Re-execute the committed notebooks with default parameters (their outputs are the tutorial).
refresh-notebooks: setup
	rm -rf runs/tutorial
	EMOTUNE_RUN_DIR=$(CURDIR)/runs/tutorial TQDM_DISABLE=1 PYTHONHASHSEED=0 \
		$(BIN)/python -c "from emotune.series import list_notebooks, refresh_committed; refresh_committed(list_notebooks())"
