# The two commands a newcomer needs:  make demo   |   make test
# Everything lives in .venv; nothing is installed system-wide.
PYTHON ?= python3
# PyTorch 2.13.0 (on Linux, PyPI's build bundles CUDA). CPU-only: make TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" demo
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin

# The tests whose figures come out of BLAS / oneDNN / vectorised kernels, run again as on an AVX2-only CPU (most
# laptops): `--cpu avx2` caps ATen, oneDNN and MKL at AVX2 (latentatlas.hardware.AVX2_ONLY), so `auto` trains in
# fp32 and every float is recomputed by other kernels; a float compared exactly after a recomputation fails here.
# Tests marked same_kernels (two runs of this machine compared with each other) are left out there.
NUMERICAL := tests/test_hardware.py tests/test_graph.py tests/test_seams.py tests/test_train.py tests/test_resume.py \
	tests/test_geometries.py tests/test_variational.py tests/test_neighbours.py tests/test_stack.py tests/test_nets.py \
	tests/test_export.py tests/test_runs.py tests/test_schedules.py tests/test_neural.py tests/test_bench.py \
	tests/test_corruptions.py tests/test_layout.py

.PHONY: demo test test-avx2 install clean

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

test-avx2: install
	$(BIN)/python -m pytest -q --cpu avx2 -m "not same_kernels" $(NUMERICAL)

clean:
	rm -rf $(VENV) runs build *.egg-info
