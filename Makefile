# StreamHub: `make run` starts the whole platform, `make test` runs every test.
# Both install what is missing first (Debian packages, the virtualenv, migrations).

VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
# Three test processes (pytest-xdist): media tests mostly wait on real time, so two cores serve three.
# `--dist loadfile` keeps a module (and its platform) in one process; `--no-loadscope-reorder` hands the
# modules out in collection order, where tests/conftest.py puts the ones that start real processes first
# (xdist's default order, by number of tests, left the long integration modules for last).
PYTEST_ARGS ?= -n 3 --dist loadfile --no-loadscope-reorder

.PHONY: run test test-postgres install-systemd lint format bench setup system-deps system-deps-test system-deps-bench venv migrate

run: setup migrate
	$(PYTHON) scripts/run_platform.py

test: system-deps-test venv
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# The same suite against PostgreSQL (any reachable server; this one has trust auth on 127.0.0.1).
test-postgres:
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} $(MAKE) test

# Benchmarks beside reference servers (installs nginx with its RTMP module).
bench: system-deps-bench venv
	$(PYTHON) bench/rtmp_hls.py

# Install the platform as systemd services on this machine (README "Run in production"); as root.
install-systemd:
	deploy/install.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check apps streamhub media_engine tests bench scripts

format: venv
	$(VENV)/bin/ruff format apps streamhub media_engine tests bench scripts
	$(VENV)/bin/ruff check --fix .

setup: system-deps venv

system-deps:
	scripts/install-system-deps.sh run

system-deps-test:
	scripts/install-system-deps.sh test

system-deps-bench:
	scripts/install-system-deps.sh bench

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -r requirements.txt
	touch $(STAMP)

migrate: venv
	$(PYTHON) manage.py migrate --noinput
