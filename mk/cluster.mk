# The local Kubernetes clusters (devcluster/src/ferry_devcluster): kwok's fake nodes or a real node.

NODE ?= kwok

.PHONY: deps tools load-images start-cluster stop-cluster check-cluster print-path

##@ Build

deps: ## install the system packages and uv that a fresh machine lacks, then the Python workspace
	@bash .ci/deps.sh

tools: ## build etcd, Kubernetes, kwok, helm, KServe, CoreDNS, metrics-server and kube-router from their Go modules (cached by version)
	@$(DEVCLUSTER) tools

load-images: tools ## build Ferry's images (operator, gateway, predictor, mlflow, redis) with buildah, cached; import them into the real node if it is up
	@$(DEVCLUSTER) --node real images

##@ Cluster

start-cluster: tools ## start the local cluster (NODE=kwok: fake nodes, .local/kubeconfig; NODE=real: a real node, .local/e2e/kubeconfig)
	@$(DEVCLUSTER) --node $(NODE) up

stop-cluster: ## stop the local cluster (NODE=kwok|real) and remove its state
	@$(DEVCLUSTER) --node $(NODE) down

check-cluster: ## say whether the local cluster (NODE=kwok|real) is up (exit 1 if not)
	@$(DEVCLUSTER) --node $(NODE) status

print-path: ## print the PATH entries of the built binaries (kubectl, helm, ...)
	@$(DEVCLUSTER) bin
