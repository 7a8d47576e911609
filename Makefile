# EY Data Platform. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Another Python in its own virtualenv: make test PYTHON=python3.13 VENV=.venv-3.13
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov has its own virtualenv: its many pins must not constrain the product.
CHECKOV_VERSION := 3.3.30
CHECKOV := .tools/checkov
CHECKOV_STAMP := $(CHECKOV)/.installed-$(CHECKOV_VERSION)

.PHONY: help setup demo demo-gcp emulators test lint format bench clean

help: ## Show this help.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,gcp]"
	touch $(STAMP)

$(CHECKOV_STAMP):
	python3 -m venv $(CHECKOV)
	$(CHECKOV)/bin/pip install --quiet "checkov==$(CHECKOV_VERSION)"
	touch $(CHECKOV_STAMP)

setup: $(STAMP) ## Create .venv with the machine's python3 and install the project.

demo: setup ## Run the main job end to end, offline, on embedded defaults.
	$(BIN)/ey-platform demo

demo-gcp: setup ## The same demo on the Google Cloud emulators (production code path).
	EYP_DATA_DIR=data/gcp scripts/emulators.sh run --use $(BIN)/ey-platform demo

emulators: ## Start the Google Cloud emulators (scripts/emulators.sh stop|status|env).
	scripts/emulators.sh start

test: setup $(CHECKOV_STAMP) ## Run the test suite, the emulator half included when they can start.
	scripts/emulators.sh run $(BIN)/pytest

lint: setup ## ruff check, ruff format --check, mypy.
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: setup ## Apply ruff's fixes and formatting.
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: setup ## Run the benchmarks and rewrite bench/RESULTS.md.
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m bench

clean: ## Remove the virtualenvs, caches and local data.
	-scripts/emulators.sh stop
	rm -rf $(sort .venv .venv-3.13 $(VENV)) .emulators .tools data build dist \
		.pytest_cache .mypy_cache .ruff_cache src/ey_platform/dbt/target src/ey_platform/dbt/logs
