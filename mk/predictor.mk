# The predictor, the example model and the local MLflow server.

FERRY_MLFLOW_PORT ?= 5000
FERRY_MLFLOW_URL := http://127.0.0.1:$(FERRY_MLFLOW_PORT)

.PHONY: start-mlflow stop-mlflow train bench-predictor

##@ Run

start-mlflow: ## start a local MLflow server (sqlite + artifacts under .local/mlflow) and print its URL; idempotent
	@$(PY) -m ferry_devcluster.mlflow_server up --dir .local/mlflow --port $(FERRY_MLFLOW_PORT)

stop-mlflow: ## stop the local MLflow server started by start-mlflow
	@$(PY) -m ferry_devcluster.mlflow_server down --dir .local/mlflow

train: ## train the Titanic pipelines, register titanic-survival v1 (alias champion) and v2, print accuracies
	@MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-$(FERRY_MLFLOW_URL)} $(PY) -m ferry_mlflow_example

##@ Test

bench-predictor: ## benchmark ferry-predictor vs MLflow's scoring server and a stock KServe server (JSON in .local/bench)
	@command -v wrk >/dev/null || { echo "installing wrk (the load generator) ..."; \
		apt-get install -y wrk >/dev/null 2>&1 || { echo "wrk is missing and apt-get failed: install wrk"; exit 2; }; }
	@$(MAKE) --no-print-directory start-mlflow
	@MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-$(FERRY_MLFLOW_URL)} $(PY) predictor/bench/run.py $(BENCH_ARGS)
