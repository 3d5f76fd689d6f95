# `make demo`: the narrated tour of Ferry on the stack `make up` started (reads .local/stack.json).
# The tour is devcluster/src/ferry_devcluster/demo.py; DEMO_ARGS passes flags to it (e.g. --steps 1,2).

DEMO_ARGS ?=

.PHONY: demo

##@ Run

demo: ## narrate Ferry on the `make up` stack: predictions, 401/429, new version, blue-green rollout, rollback, abort
	@$(DEVCLUSTER).demo $(DEMO_ARGS)
