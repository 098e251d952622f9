# `make demo` and `make test` are the two commands a fresh clone needs (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install demo test test-fast lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# the CPU wheel first, so nothing pulls gigabytes of CUDA packages
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[all,test]"
	touch $@

install: $(VENV)/.installed

demo: install
	rm -rf .demo && mkdir -p .demo
	HF_HUB_OFFLINE=1 $(VENV)/bin/listener run --once --summary --config examples/demo/config.yaml
	# then the dashboard on the demo data: it prints its URL and serves until Ctrl-C
	$(VENV)/bin/listener serve --config examples/demo/config.yaml

lint: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

test: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

# the inner loop: everything but the tests marked slow (full training, crash runs, soak-like)
test-fast: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

clean:
	rm -rf .demo .pytest_cache .ruff_cache
