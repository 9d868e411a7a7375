# Two commands do everything: `make train` (set-up, a demo model, generated text) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The shared test corpora beside the project serve as the Gutenberg mirror when they are there
# (this machine has no internet); anywhere else the books come from gutenberg.org.
CORPORA_DIR ?= ../shared/corpora
GUTENBERG_MIRROR ?= $(if $(wildcard $(CORPORA_DIR)/gutenberg/cache/epub),$(abspath $(CORPORA_DIR)/gutenberg),https://www.gutenberg.org)
DEMO_EXPORT ?= exports/demo

.PHONY: install train test test-lowest clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements-lock.txt ".[test]"
	touch $@

# Ten minutes of training (TRAIN_MINUTES) of a small model on the default six novels, then 600 generated characters.
TRAIN_MINUTES ?= 10
train: install
	$(BIN)/python train.py --flagfile=demo.flags --train_minutes=$(TRAIN_MINUTES) --gutenberg_mirror=$(GUTENBERG_MIRROR) --export_dir=$(DEMO_EXPORT)
	$(BIN)/python generate.py --export_dir=$(DEMO_EXPORT) --seed_text="It was " --length=600 --temperature=0.6 --seed=1

test: install
	$(BIN)/python -m pytest

# The smoke tests (train, resume, export, generate, SavedModel) on the lowest supported TensorFlow, 2.19 with
# Keras 3.10 as on Colab's GPU runtime, in a venv of its own from requirements-lowest.txt.
LOWEST_VENV ?= .venv-lowest
test-lowest: $(LOWEST_VENV)/.installed
	$(LOWEST_VENV)/bin/python -m pytest -m smoke

$(LOWEST_VENV)/.installed: pyproject.toml requirements-lowest.txt
	$(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/pip install --quiet --upgrade pip
	$(LOWEST_VENV)/bin/pip install --quiet -c requirements-lowest.txt ".[test]"
	touch $@

clean:
	rm -rf $(VENV) $(LOWEST_VENV) exports .pytest_cache
