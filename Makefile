# The two commands a newcomer needs:  make demo   |   make test
# Everything lives in .venv; nothing is installed system-wide.
PYTHON ?= python3
# PyTorch 2.13.0 (on Linux, PyPI's build bundles CUDA). CPU-only: make TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" demo
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/latentatlas demo

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs build *.egg-info
