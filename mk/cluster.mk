# The local Kubernetes control plane (tests/e2e/localcluster).

.PHONY: deps tools cluster-up cluster-down cluster-status cluster-bin local-images

deps: ## install the system packages and uv that a fresh machine lacks, then the Python workspace
	@bash .ci/deps.sh

tools: ## build etcd, Kubernetes, kwok, helm and KServe from their Go modules (cached by version)
	@$(LOCALCLUSTER) tools

NODE ?= kwok

cluster-up: tools ## start the local cluster (NODE=kwok: fake nodes, .local/kubeconfig; NODE=real: a real node, .local/e2e/kubeconfig)
	@$(LOCALCLUSTER) --node $(NODE) up

cluster-down: ## stop the local cluster (NODE=kwok|real) and remove its state
	@$(LOCALCLUSTER) --node $(NODE) down

cluster-status: ## say whether the local cluster (NODE=kwok|real) is up
	@$(LOCALCLUSTER) --node $(NODE) status

cluster-bin: ## print the PATH entries of the built binaries (kubectl, helm, ...)
	@$(LOCALCLUSTER) bin

local-images: tools ## build Ferry's images (operator, gateway, predictor, mlflow, redis) with buildah, cached; import them into the real node if it is up
	@$(LOCALCLUSTER) --node real images
