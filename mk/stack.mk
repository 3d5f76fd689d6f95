# The whole product on the local real node: the two commands a newcomer runs first.

.PHONY: up down

##@ Run

up: deps ## bring up everything on a local real node: cluster, images, chart (dev values), Titanic model, sample ModelDeployment
	@$(DEVCLUSTER).stack up

down: ## remove what make up brought up (the real node and all on it; build caches are kept)
	@$(DEVCLUSTER).stack down
