# The local Kubernetes control plane (tests/e2e/localcluster).

.PHONY: deps tools cluster-up cluster-down cluster-status cluster-bin

deps: ## install the system packages and uv that a fresh machine lacks, then the Python workspace
	@bash .ci/deps.sh

tools: ## build etcd, Kubernetes, kwok, helm and KServe from their Go modules (cached by version)
	@$(LOCALCLUSTER) tools

cluster-up: tools ## start the local cluster; writes .local/kubeconfig (idempotent)
	@$(LOCALCLUSTER) up

cluster-down: ## stop the local cluster and remove its state
	@$(LOCALCLUSTER) down

cluster-status: ## say whether the local cluster is up
	@$(LOCALCLUSTER) status

cluster-bin: ## print the PATH entries of the built binaries (kubectl, helm, ...)
	@$(LOCALCLUSTER) bin
