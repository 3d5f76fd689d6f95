# The predictor, the example model and the local MLflow server.

FERRY_MLFLOW_PORT ?= 5000
FERRY_MLFLOW_URL := http://127.0.0.1:$(FERRY_MLFLOW_PORT)
EXAMPLE_PY := PYTHONPATH=mlflow:tests/e2e $(PY)

.PHONY: mlflow-up mlflow-down train bench-predictor

mlflow-up: ## start a local MLflow server (sqlite + artifacts under .local/mlflow) and print its URL; idempotent
	@$(EXAMPLE_PY) -m ferry_mlflow_example.server up --dir .local/mlflow --port $(FERRY_MLFLOW_PORT)

mlflow-down: ## stop the local MLflow server started by mlflow-up
	@$(EXAMPLE_PY) -m ferry_mlflow_example.server down --dir .local/mlflow

train: ## train the Titanic pipelines, register titanic-survival v1 (alias champion) and v2, print accuracies
	@MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-$(FERRY_MLFLOW_URL)} $(EXAMPLE_PY) -m ferry_mlflow_example

bench-predictor: ## benchmark ferry-predictor vs MLflow's scoring server and a stock KServe server (JSON in .local/bench)
	@command -v wrk >/dev/null || { echo "installing wrk (the load generator) ..."; \
		apt-get install -y wrk >/dev/null 2>&1 || { echo "wrk is missing and apt-get failed: install wrk"; exit 2; }; }
	@$(MAKE) --no-print-directory mlflow-up
	@MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-$(FERRY_MLFLOW_URL)} $(PY) predictor/bench/run.py $(BENCH_ARGS)
