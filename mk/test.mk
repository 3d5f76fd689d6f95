# Lint, types and the four test tiers (by folder: tests/{unit,process,cluster,node}/, see conftest.py).

PY_SOURCES := common operator predictor gateway mlflow devcluster testing generate tests conftest.py
MYPY_TARGETS := $(wildcard common/src operator/src predictor/src gateway/src mlflow/src devcluster/src testing/src generate/src) devcluster/tests tests/unit tests/process tests/load conftest.py
# Not yet: tests/cluster and tests/node (moved from tests/e2e, never type-checked; ~70 errors).
PYTEST := $(UV) run --frozen pytest -p no:cacheprovider --timeout=900
TIERS := unit process cluster node

.PHONY: test lint fmt bench $(addprefix test-,$(TIERS))

##@ Test

test: deps tools ## lint, then every tier (unit, process, cluster, node) with each phase's time; installs what is missing
	@bash tests/run.sh

lint: ## ruff (lint + format check) and mypy
	@$(UV) run --frozen ruff check $(PY_SOURCES)
	@$(UV) run --frozen ruff format --check $(PY_SOURCES)
	@$(UV) run --frozen mypy $(MYPY_TARGETS)

fmt: ## apply ruff's formatting and safe fixes
	@$(UV) run --frozen ruff check --fix $(PY_SOURCES)
	@$(UV) run --frozen ruff format $(PY_SOURCES)

test-unit: ## the unit tier: pure code and in-process calls; no subprocess or listening socket (refused)
	@$(PYTEST) -m unit -q

test-process: ## the process tier: real local Redis, MLflow, Prometheus, uvicorn servers and CLIs
	@$(PYTEST) -m process -q

test-cluster: tools ## the cluster tier: the local kwok cluster (started on demand, left running)
	@$(PYTEST) -m cluster -q

test-node: tools ## the node tier: the local real node and the whole `make up` stack (needs root)
	@$(PYTEST) -m node -q

bench: bench-predictor bench-gateway bench-operator bench-rollout ## every benchmark, side by side with the alternatives (JSON under .local/bench/)
