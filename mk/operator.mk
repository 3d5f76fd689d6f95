# The operator: CRDs generated from ferry_operator.resource, a local run against $KUBECONFIG.

MLFLOW_TRACKING_URI ?= http://127.0.0.1:5000
FERRY_REGISTRY_POLL_SECONDS ?= 30
BENCH_DIR ?= .local/bench

.PHONY: manifests manifests-check install uninstall run bench-operator

manifests: ## regenerate manifests/crds and charts/ferry/crds from the operator's typed models
	$(PY) -m ferry_operator.crdgen

manifests-check: ## fail when the committed CRDs differ from the models
	$(PY) -m ferry_operator.crdgen --check

install: manifests ## apply Ferry's CRDs and the ferry-mlflow ClusterServingRuntime to the cluster of KUBECONFIG
	$(PY) -m ferry_operator.kubeapply --kubeconfig "$(KUBECONFIG)" manifests/crds
	$(PY) -m ferry_operator.kubeapply --kubeconfig "$(KUBECONFIG)" manifests/runtime

uninstall: ## delete Ferry's CRDs (and every ModelDeployment) and its runtime from the cluster of KUBECONFIG
	$(PY) -m ferry_operator.kubeapply --kubeconfig "$(KUBECONFIG)" --delete manifests/runtime manifests/crds

run: install ## run the operator locally against KUBECONFIG and MLFLOW_TRACKING_URI (make mlflow-up's server)
	KUBECONFIG="$(KUBECONFIG)" MLFLOW_TRACKING_URI="$(MLFLOW_TRACKING_URI)" \
	FERRY_REGISTRY_POLL_SECONDS="$(FERRY_REGISTRY_POLL_SECONDS)" \
	$(UV) run --frozen ferry-operator --all-namespaces

bench-operator: install ## time 50 ModelDeployments from apply to Ready and the operator's memory (JSON in .local/bench/)
	KUBECONFIG="$(KUBECONFIG)" $(PY) operator/bench/operator_bench.py --count 50 --out "$(BENCH_DIR)/operator.json"
