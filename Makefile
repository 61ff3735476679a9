# Two commands on a fresh machine:  make demo  |  make test
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch is pinned to the CPU build that installs quickly (a plain `torch` pulls a multi-GB CUDA build).
TORCH  ?= torch==2.13.0
DEMO   := examples/digits

.PHONY: install demo lint test test-fast bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[cpu,test,tabular,openvino]"
	touch $@

install: $(VENV)/.installed

## demo: train the digits example, package it, run the bundle, print the accuracy
demo: install
	$(PY) $(DEMO)/prepare.py
	$(VENV)/bin/ninefit package $(DEMO)/ninefit.toml -o $(DEMO)/work/bundle --force
	$(VENV)/bin/ninefit run $(DEMO)/work/bundle --data $(DEMO)/data --out $(DEMO)/work/submission.csv
	$(PY) $(DEMO)/score.py $(DEMO)/work/submission.csv

## lint: ruff (pyflakes, isort, bugbear; pyproject.toml) and mypy on runtime/ and packager/ (setup.cfg)
lint: install
	$(VENV)/bin/ruff check runtime packager tests benchmarks examples scripts
	$(VENV)/bin/mypy

## test: install, check, then run the whole test suite
test: lint
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) $(DEMO)/data $(DEMO)/checkpoints $(DEMO)/work .pytest_cache
