# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch that pip resolves on these machines; a plain `torch` could pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: venv demo test lint typecheck clean

$(STAMP): setup.cfg pyproject.toml
	$(MAKE) --no-print-directory system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[host,runtime,dev,gstreamer,bench]"
	touch $@

# Debian packages: GStreamer with its introspection data (gst:// sources), what PyGObject builds against, and
# Chromium for the browser-view test. Installed only when missing; without root/apt-get it says what to install.
SYSTEM_PACKAGES := gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gir1.2-gstreamer-1.0 \
	gir1.2-gst-plugins-base-1.0 libgirepository1.0-dev libcairo2-dev pkg-config gcc python3-dev chromium
.PHONY: system-deps
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else \
		echo "missing Debian packages:$$missing -- install them as root (apt-get install$$missing)" >&2; exit 1; \
	fi

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
	# train briefly on synthetic scenes, export, FP16, accuracy, bundle for the Nano (engine: on the board)
	$(VENV)/bin/edgekit build --target jetson-nano -o runs/bundles/demo-jetson-nano
	# run it as the board would, on a street sample: overlay video and run stats in runs/demo/
	$(VENV)/bin/edgekit demo --bundle runs/bundles/demo-jetson-nano --out-dir runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check edgekit tests
	$(VENV)/bin/ruff format --check edgekit tests

# What a board imports must run on JetPack 4.6's Python 3.6, which no registry here has: checked statically.
# vermin: every stdlib API and syntax used (annotations evaluated as 3.6 does); pyright at pythonVersion 3.6: the
# syntax and typing constructs (typeshed no longer marks stdlib APIs older than 3.9, so the API check is vermin's),
# with the 3.7 stub of the dataclasses module standing in for its 3.6 backport.
BOARD36 := edgekit/board edgekit/cli edgekit/__init__.py edgekit/__main__.py edgekit/errors.py edgekit/quant/__init__.py edgekit/quant/options.py
PYRIGHT36 := typings/pyright36/dataclasses.pyi
$(PYRIGHT36): $(STAMP)
	mkdir -p $(@D)
	cp "$$($(PY) -c 'import pyright, pathlib; print(next(pathlib.Path(pyright.__file__).parent.rglob("typeshed-fallback/stdlib/dataclasses.pyi")))')" $@

typecheck: $(STAMP) $(TRT_STUBS) $(PYRIGHT36)
	$(VENV)/bin/mypy
	$(VENV)/bin/vermin -q -t=3.6- --eval-annotations --backport dataclasses --backport typing_extensions==4.0 --no-tips --violations $(BOARD36)
	$(VENV)/bin/pyright

test: lint typecheck
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) typings .mypy_cache .pytest_cache .ruff_cache build *.egg-info
