# flowprep: `make demo` builds HMDB5 from a small built-in sample; `make test` runs the tests.
# Both create .venv and install everything on first use (safe to run again: nothing is redone).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch. An open range would pull a multi-GB CUDA build; on a GPU machine install
# the torch build you want into $(VENV) first, or override: make TORCH_SPEC='torch==2.13.0' ...
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.flowprep-installed

.PHONY: all demo check test test-fast bench sysdeps cuda-bindings gpu-check clean
all: test

# RAR decompressors for compressed RAR members (HMDB51's archives). Needs root; skipped with a
# message otherwise (stored RARs, folders, zip and tar need no tool).
sysdeps:
	@if command -v unar >/dev/null 2>&1 && command -v bsdtar >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq unar libarchive-tools >/dev/null) \
	  || echo "warning: could not install unar/libarchive-tools; compressed RARs will need one of unar, unrar, 7z, bsdtar"; \
	else echo "note: install a RAR decompressor for compressed RARs: sudo apt-get install unar (or unrar, 7zip, libarchive-tools)"; fi

$(STAMP): pyproject.toml | sysdeps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[train,export,cluster,bench,test,dev]"
	touch $(STAMP)

# NVIDIA's cuda-bindings 12.x and 13.x, each in its own folder (not on the venv's path): the
# emulated-driver tests (tests/test_nvof_emulated.py) run the nvof backend with both. No GPU needed.
# A failed install (e.g. 13.x on Python 3.10) only warns: those tests then skip and say why.
CUDA_BINDINGS := $(VENV)/cuda-bindings-12/.installed $(VENV)/cuda-bindings-13/.installed
cuda-bindings: $(CUDA_BINDINGS)
$(VENV)/cuda-bindings-%/.installed: | $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check --target $(VENV)/cuda-bindings-$* \
	  "cuda-bindings>=$*.0,<$$(( $* + 1 ))" && touch $@ \
	  || echo "warning: cuda-bindings $*.x not installed; its emulated nvof tests will skip"

# On a GPU machine: every GPU claim checked once (flowprep doctor), JSON report in gpu-check.json.
gpu-check: $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check "cuda-bindings>=12.8,<14"
	$(PY) -m flowprep doctor --json-out gpu-check.json

demo: $(STAMP)
	$(PY) -m flowprep.demo --out demo-out

# The guard rails: lint, format, types, import layers (configured in pyproject.toml).
check: $(STAMP)
	$(VENV)/bin/ruff check flowprep tests examples bench
	$(VENV)/bin/ruff format --check flowprep tests examples bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: check cuda-bindings
	$(PY) -m pytest -q -rs

# Everything but the long end-to-end tests (marked slow); no guard rails.
test-fast: $(STAMP) cuda-bindings
	$(PY) -m pytest -q -rs -m "not slow"

bench: $(STAMP)
	mkdir -p bench-out
	$(PY) bench/bench_build.py --out bench-out
	$(PY) bench/bench_flow.py bench-out/bench_flow.json
	$(PY) bench/bench_infer.py
	$(PY) bench/bench_train.py

clean:
	rm -rf demo-out bench-out .pytest_cache gpu-check.json
