# Two entry points (see README): `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# torch is pinned to the CPU wheel that ships on our machines; an open range would pull a
# multi-GB CUDA build. Users with a GPU install their own torch first; pip then keeps it.
TORCH  ?= torch==2.13.0

.PHONY: venv demo test bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[full,audio,test,scale,sketch]"
	$(PY) -c "import dlib, skimage"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m face3d demo --out out/demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/bench_rasterize.py
	$(PY) bench/bench_stabilize.py
	$(PY) bench/bench_reconstruct.py

clean:
	rm -rf $(VENV) out .pytest_cache
