# flowprep: `make demo` builds HMDB5 from a small built-in sample; `make test` runs the tests.
# Both create .venv and install everything on first use (safe to run again: nothing is redone).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
# The CPU wheel of torch. An open range would pull a multi-GB CUDA build; on a GPU machine install
# the torch build you want into $(VENV) first, or override: make TORCH_SPEC='torch==2.13.0' ...
TORCH_SPEC ?= torch==2.13.0
# Every other package make demo/test and CI install: exact versions with hashes (requirements/README.md).
LOCK := requirements/dev.lock
# the Python the lock is resolved for (its markers and wheels are chosen for it)
LOCK_PYTHON := 3.11
EXTRAS := train,export,cluster,bench,test,dev,webdataset
STAMP := $(VENV)/.flowprep-installed

.PHONY: all demo check test test-fast test-latest test-oldest lock lock-upgrade wheel-check bench sysdeps \
	cuda-bindings gpu-check clean
all: test

# RAR decompressors for compressed RAR members (HMDB51's archives). Needs root; skipped with a
# message otherwise (stored RARs, folders, zip and tar need no tool).
sysdeps:
	@if command -v unar >/dev/null 2>&1 && command -v bsdtar >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq unar libarchive-tools >/dev/null) \
	  || echo "warning: could not install unar/libarchive-tools; compressed RARs will need one of unar, unrar, 7z, bsdtar"; \
	else echo "note: install a RAR decompressor for compressed RARs: sudo apt-get install unar (or unrar, 7zip, libarchive-tools)"; fi

# The locked set first (--no-deps: nothing unlocked comes in; hashes: no other file of the same
# version either), then torch (its dependencies are in the lock already), then flowprep itself, built
# with the locked setuptools (no build isolation, which would fetch an unlocked one).
$(STAMP): pyproject.toml $(LOCK) | sysdeps
	@$(PYTHON) -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v == "$(LOCK_PYTHON)" else \
	  f"$(LOCK) is resolved for Python $(LOCK_PYTHON), and $(PYTHON) is Python {v}: run make with \
	  PYTHON=python$(LOCK_PYTHON), or try the ranges in pyproject.toml with make test-latest PYTHON=$(PYTHON)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --require-hashes --no-deps -r $(LOCK)
	$(PIP) "$(TORCH_SPEC)"
	$(PIP) --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

# NVIDIA's cuda-bindings 12.x and 13.x, each in its own folder (not on the venv's path): the
# emulated-driver tests (tests/test_nvof_emulated.py) run the nvof backend with both. No GPU needed.
# Locked like the rest (requirements/cuda-bindings-*.lock). A failed install only warns: those tests
# then skip and say why (under CI=true they fail instead).
CUDA_BINDINGS := $(VENV)/cuda-bindings-12/.installed $(VENV)/cuda-bindings-13/.installed
cuda-bindings: $(CUDA_BINDINGS)
$(VENV)/cuda-bindings-%/.installed: requirements/cuda-bindings-%.lock | $(STAMP)
	$(PIP) --require-hashes --no-deps --upgrade --target $(VENV)/cuda-bindings-$* -r $< && touch $@ \
	  || echo "warning: cuda-bindings $*.x not installed; its emulated nvof tests will skip"

# Re-resolve the locks after a change to pyproject.toml's dependencies, keeping every pin that still
# fits (lock-upgrade: move everything to the newest releases the ranges allow). Record each refresh in
# CHANGELOG.md. torch is resolved from TORCH_SPEC's wheel but left out of the lock (requirements/torch.txt).
PIP_COMPILE = $(VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	--no-emit-find-links $(LOCK_FLAGS)
lock: $(STAMP)
	$(PIP_COMPILE) --unsafe-package torch --extra $(EXTRAS) -c requirements/torch.txt -o $(LOCK) \
	  pyproject.toml requirements/dev.in
	for m in 12 13; do $(PIP_COMPILE) -o requirements/cuda-bindings-$$m.lock requirements/cuda-bindings-$$m.in; done
lock-upgrade:
	$(MAKE) lock LOCK_FLAGS=--upgrade

# The newest releases pyproject.toml's ranges allow, in a throw-away venv: an upstream change is seen
# here before a lock refresh brings it to everyone. Not part of make test or CI. Runs every step and
# fails at the end if any failed.
LATEST := .venv-latest
test-latest:
	rm -rf $(LATEST) && $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(LATEST)/bin/python -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(LATEST)/bin/python -m pip install -q --disable-pip-version-check -e ".[$(EXTRAS)]"
	$(LATEST)/bin/python -m pip list --format=freeze > $(LATEST)/versions.txt
	@rc=0; \
	$(LATEST)/bin/ruff check flowprep tests examples bench || rc=1; \
	$(LATEST)/bin/ruff format --check flowprep tests examples bench || rc=1; \
	$(LATEST)/bin/mypy || rc=1; \
	$(LATEST)/bin/lint-imports || rc=1; \
	$(LATEST)/bin/python -m pytest -q -rs || rc=1; \
	echo "test-latest: versions in $(LATEST)/versions.txt; exit $$rc"; exit $$rc

# The lower bounds of pyproject.toml's ranges (requirements/oldest.txt), in a throw-away venv.
OLDEST := .venv-oldest
test-oldest:
	rm -rf $(OLDEST) && $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(OLDEST)/bin/python -m pip install -q --disable-pip-version-check -c requirements/oldest.txt \
	  -e ".[train,export,cluster,bench,test,webdataset]"
	$(OLDEST)/bin/python -m pip list --format=freeze > $(OLDEST)/versions.txt
	$(OLDEST)/bin/python -m pytest -q -rs -m "not slow"

# The wheel as users get it: sdist + wheel built from the locked build backend, metadata checked,
# the wheel installed into a clean venv outside the repo and run there (version, backends, a small
# build + verify + preview). CI runs it after make test.
wheel-check: $(STAMP)
	rm -rf dist
	$(PY) -m build --no-isolation --sdist --wheel --outdir dist . >/dev/null
	$(VENV)/bin/twine check --strict dist/*
	bash .ci/wheel-smoke "$(PYTHON)" dist $(LOCK)

# On a GPU machine: every GPU claim checked once (flowprep doctor), JSON report in gpu-check.json.
gpu-check: $(STAMP)
	$(PIP) --require-hashes --no-deps -r requirements/cuda-bindings-13.lock
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
	$(PY) bench/bench_flow.py bench-out/bench_flow.json $(if $(REAL_PAIRS),--pairs-dir $(REAL_PAIRS))
	$(PY) bench/bench_infer.py
	$(PY) bench/bench_train.py
	$(PY) bench/bench_pack.py --out bench-out --clips 114

clean:
	rm -rf demo-out bench-out .pytest_cache gpu-check.json dist $(LATEST) $(OLDEST)
