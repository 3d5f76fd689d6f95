# Lint, types and every test suite.

PY_SOURCES := common operator predictor gateway tests conftest.py $(wildcard mlflow) $(wildcard charts/ferrycharts)
MYPY_TARGETS := $(wildcard common/src operator/src predictor/src gateway/src mlflow charts/ferrycharts tests/chart) tests/e2e/localcluster tests/e2e/fixtures tests/load

.PHONY: test lint fmt unit

test: deps tools ## run every check and test suite (lint, types, unit, cluster, e2e); installs what is missing
	@bash tests/run.sh

lint: ## ruff (lint + format check) and mypy
	@$(UV) run --frozen ruff check $(PY_SOURCES)
	@$(UV) run --frozen ruff format --check $(PY_SOURCES)
	@$(UV) run --frozen mypy $(MYPY_TARGETS)

fmt: ## apply ruff's formatting and safe fixes
	@$(UV) run --frozen ruff check --fix $(PY_SOURCES)
	@$(UV) run --frozen ruff format $(PY_SOURCES)

unit: ## the fast tests only (no cluster)
	@$(UV) run --frozen pytest -m "not cluster" -q

.PHONY: bench
bench: bench-predictor bench-gateway bench-operator ## every benchmark, side by side with the alternatives (JSON under .local/bench/)
