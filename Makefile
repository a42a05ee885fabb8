# Two entry points for a fresh machine (Debian/Ubuntu, Python 3.11):
#   make demo  - set up, generate the demo retailer, build the latest complete quarter's pack
#   make test  - set up, run the whole test suite
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The venv's interpreter: the distribution's Python 3.11 where there is one, else python3 on
# PATH (override with `make PYTHON=...`). Debian builds its python3.11 with PGO and LTO, linked
# statically; a pyenv build as on this kind of machine has neither, and the render (WeasyPrint
# is pure Python) takes ~10-15% more CPU on it: see docs/report.md, "The interpreter".
PYTHON ?= $(firstword $(wildcard /usr/bin/python3.11) python3)
SYSTEM_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 poppler-utils
export PYTHONWARNINGS := ignore

.PHONY: demo test test-fast airflow setup system services lock clean FORCE

demo: setup
	@$(VENV)/bin/cxpipeline demo

test: setup services
	@$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=25

# The unit lane: metrics, reading rules, model and architecture tests (no services, no renders).
test-fast: setup
	@$(PY) -m pytest -q -p no:cacheprovider -n 2 -m "not integration and not slow"

# A local Airflow (no Docker): api-server, scheduler, dag-processor on 127.0.0.1, the local
# PostgreSQL (else SQLite), an SMTP sink; prints the UI address and password (docs/airflow.md).
airflow: setup
	@scripts/airflow_local.sh

# The project's own modules are compiled too (only those changed since: ~0.3 s a process).
setup: system $(VENV)/.installed
	@$(PY) -m compileall -q -j 0 cxpipeline dags plugins >/dev/null

# System libraries WeasyPrint needs and pdftoppm/pdffonts; installed only when missing.
system:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# The venv is built from the committed lock with uv (seconds), falling back to pip. Its
# modules are compiled to bytecode once here (~30 s): with PYTHONDONTWRITEBYTECODE set, as on
# this kind of machine, every process would otherwise compile pandas, WeasyPrint and Airflow
# from source again (importing the report took 10.6 s instead of 3.6 s).
$(VENV)/.installed: requirements.lock pyproject.toml $(VENV)/.python
	@command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv 2>/dev/null || true
	@if command -v uv >/dev/null 2>&1; then \
	  rm -rf $(VENV) && uv venv -q $(VENV) --python $(PYTHON) && \
	  uv pip sync -q --python $(PY) --compile-bytecode requirements.lock && \
	  uv pip install -q --python $(PY) --no-deps -e . ; \
	else \
	  rm -rf $(VENV) && python3 -m venv $(VENV) && \
	  $(PY) -m pip install -q -r requirements.lock && $(PY) -m pip install -q --no-deps -e . ; \
	fi
	@echo "$(PYTHON)" > $(VENV)/.python && touch $@

# The interpreter chosen for the venv (PYTHON); choosing another one rebuilds the venv. Without
# uv the venv is python3's own (a distribution's python3.11 may lack ensurepip).
$(VENV)/.python: FORCE
	@mkdir -p $(VENV); [ "$$(cat $@ 2>/dev/null)" = "$(PYTHON)" ] || echo "$(PYTHON)" > $@

# PostgreSQL and Redis are started by this kind of machine; start PostgreSQL if it is down.
services:
	@if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then \
	  echo "starting PostgreSQL"; pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start || true; \
	fi

# Recompile the lock after editing requirements.in.
lock:
	uv pip compile -q requirements.in -o requirements.lock --python-version 3.11

clean:
	rm -rf $(VENV) out .pytest_cache
	find cxpipeline dags plugins tests -name __pycache__ -type d -prune -exec rm -rf {} +
