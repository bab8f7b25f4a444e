# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch that pip resolves on these machines; a plain `torch` could pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: venv demo test lint typecheck clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[host,dev]"
	touch $@

venv: $(STAMP)

# TensorRT type stubs for mypy, without the multi-GB TensorRT they depend on; the sed fixes the two generated
# syntax errors (shared/reference/tensorrt-api.md §9.2). Versioned stamp: changing the pin reinstalls.
TRT_STUBS_VERSION := 10.13.0.35.1
TRT_STUBS := typings/.tensorrt-stubs-$(TRT_STUBS_VERSION)
$(TRT_STUBS): $(STAMP)
	rm -rf typings
	$(PY) -m pip install -q --no-deps --target typings "tensorrt-stubs==$(TRT_STUBS_VERSION)"
	sed -E -i 's/\(self(: [A-Za-z0-9_]+)?, in: /(self\1, in_: /; s/channel_axis: int\) -> IScaleLayer/channel_axis: int = ...) -> IScaleLayer/' typings/tensorrt_bindings/tensorrt.pyi
	touch $@

demo: $(STAMP)
	$(VENV)/bin/edgekit models

lint: $(STAMP)
	$(VENV)/bin/ruff check edgekit tests
	$(VENV)/bin/ruff format --check edgekit tests

typecheck: $(STAMP) $(TRT_STUBS)
	$(VENV)/bin/mypy

test: lint typecheck
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) typings .mypy_cache .pytest_cache .ruff_cache build *.egg-info
