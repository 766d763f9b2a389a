# make test: run the tests; make demo: run the main job. Both create .venv and install the project on first use
# from the committed lock (requirements.lock: every transitive package at the version we tested), and skip the
# install when neither the lock nor the project's metadata changed.
# make lock: re-resolve the lock from pyproject.toml's ranges (then run make test before committing it).
# make test-latest: the same tests in .venv-latest, with the newest release of every dependency.
# make test-lowest: the same tests in .venv-lowest, with the oldest release pyproject.toml allows of each direct one.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
LATEST := .venv-latest
LOWEST := .venv-lowest
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: test test-integration test-latest test-lowest demo demo-quick lint bench install lock clean

install: $(STAMP)

$(STAMP): $(LOCK) pyproject.toml examples/third_party_plugin/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

# uv resolves for Linux x86_64 and aarch64 and CPython 3.11+ at once (markers in the file); pip installs from it.
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --constraint requirements/torch-pins.txt --universal \
		--python-version 3.11 --no-header --quiet --output-file $(LOCK).new
	( echo "# The tested versions of every package anymal and its dev tools need (make install reads this)."; \
	  echo "# Made by make lock (uv pip compile pyproject.toml --extra dev -c requirements/torch-pins.txt --universal"; \
	  echo "# --python-version 3.11) on $$(date -u +%Y-%m-%d). Library users install from pyproject.toml's ranges."; \
	  cat $(LOCK).new ) > $(LOCK) && rm $(LOCK).new

test: $(STAMP)
	$(PY) -m pytest -q

# The integration tier (pytest -m integration): end-to-end runs across components, on top of make test's run.
test-integration: $(STAMP)
	$(PY) -m pytest -q -m integration

# uv, not pip: it reads no pip.conf, so no machine-wide cap keeps torch at an older release.
test-latest: $(STAMP)
	$(PY) -m pip install -q uv
	test -x $(LATEST)/bin/python || $(VENV)/bin/uv venv -q --python $(PYTHON) $(LATEST)
	$(VENV)/bin/uv pip install -q --python $(LATEST)/bin/python --upgrade --reinstall-package anymal pip setuptools wheel -e ".[dev]"
	$(VENV)/bin/uv pip list -q --python $(LATEST)/bin/python | grep -iE "^(torch|transformers|bitsandbytes|peft|accelerate|open.clip.torch|tokenizers) "
	$(LATEST)/bin/python -m pytest -q

# pip, setuptools and wheel first and at their newest: lowest-direct would pick setuptools 0.7 for them too.
test-lowest: $(STAMP)
	$(PY) -m pip install -q uv
	test -x $(LOWEST)/bin/python || $(VENV)/bin/uv venv -q --python $(PYTHON) $(LOWEST)
	$(VENV)/bin/uv pip install -q --python $(LOWEST)/bin/python --upgrade pip setuptools wheel
	$(VENV)/bin/uv pip install -q --python $(LOWEST)/bin/python --resolution lowest-direct --reinstall-package anymal \
		-e ".[dev]"
	$(VENV)/bin/uv pip list -q --python $(LOWEST)/bin/python | grep -iE "^(torch|transformers|bitsandbytes|peft|accelerate|open.clip.torch|tokenizers|numpy) "
	$(LOWEST)/bin/python -m pytest -q

demo: $(STAMP)
	$(PY) -m anymal demo

demo-quick: $(STAMP)
	$(PY) -m anymal demo --quick

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy anymal

bench: $(STAMP)
	for script in bench/bench_*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) $(LATEST) $(LOWEST) build *.egg-info
