# `make demo`: the narrated tour of Ferry on the stack `make up` started (reads .local/stack.json).
# The tour is tests/e2e/localcluster/demo.py; DEMO_ARGS passes flags to it (e.g. --steps 1,2).

DEMO_ARGS ?=

.PHONY: demo

demo: ## narrate Ferry on the `make up` stack: predictions, 401/429, new version, blue-green rollout, rollback, abort
	@PYTHONPATH=tests/e2e:mlflow $(PY) -m localcluster.demo $(DEMO_ARGS)
