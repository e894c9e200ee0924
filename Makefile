# EdgeRec pipeline. `make run` and `make test` each do all the set-up they need.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
export EDGEREC_HOME ?= $(CURDIR)/.edgerec
# test workers (pytest-xdist), each taking whole test files (its fixtures built once): the long tests wait on JVM
# starts, planning and subprocesses as much as on the cores, so two share a 2-core machine
TEST_WORKERS ?= 2

.PHONY: help setup run run-stack ui test test-stack test-fast lint bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## install Java 17+ and Chromium if missing, the venv with the project, and the Airflow home (idempotent)
	@VENV=$(VENV) scripts/setup.sh

run: setup ## run the daily DAG on the embedded defaults (simulated logs) and show its outputs
	$(BIN)/edgerec run

run-stack: setup ## the daily DAG on the at-scale twins (Spark cluster, MLflow server, Airflow scheduler), 2 days
	EDGEREC_HOME=$(CURDIR)/.edgerec-stack $(BIN)/edgerec stack run

ui: setup ## after a run: the Airflow and MLflow UIs on 127.0.0.1 behind logins, and where the docs sites are
	$(BIN)/edgerec ui

test: setup ## run the whole test suite (TEST_WORKERS=0: in this process, one test at a time)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

test-stack: setup ## the at-scale twins' tests (pytest -m stack: a Spark cluster, Airflow's scheduler, ...)
	$(BIN)/pytest -m stack

test-fast: setup ## run the unit tests only
	$(BIN)/pytest -m unit

lint: setup ## ruff
	$(BIN)/ruff check .

bench: setup ## run every benchmark in bench/ (quality_signal.py and oracle.py only after a `make run`: they read its marts)
	@for b in bench/*.py; do \
	  if { [ $$b = bench/quality_signal.py ] || [ $$b = bench/oracle.py ]; } && [ ! -e $(EDGEREC_HOME)/warehouse.duckdb ]; then \
	    echo "== $$b: no marts in $(EDGEREC_HOME) yet; run \`make run\` first"; continue; fi; \
	  echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean: ## delete the state directories (every output of the embedded run and of run-stack)
	rm -rf $(EDGEREC_HOME) $(CURDIR)/.edgerec-stack
