# The Helm chart (charts/ferry), its generated files, images and the developer loop.

ENV ?= dev
NAMESPACE ?= ferry
RELEASE ?= ferry
CHART_DIR := charts/ferry
# helm/kubectl: the project's own builds (make tools) first, then whatever is on PATH.
CHART_PATH = $$($(DEVCLUSTER) bin 2>/dev/null):$$PATH
IMAGE_REGISTRY ?= ghcr.io/ferry-dev
IMAGE_TAG ?= 0.1.0
IMAGES := operator gateway predictor mlflow

.PHONY: lint-chart test-chart build-images start-kind stop-kind deploy

##@ Chart

lint-chart: ## helm lint --strict the chart with each values-ENV.yaml
	@for env in dev staging prod; do PATH=$(CHART_PATH) helm lint --strict $(CHART_DIR) -f $(CHART_DIR)/values-$$env.yaml || exit 1; done

test-chart: ## chart tests: lint, schemas, generated files, PromQL, install/upgrade/uninstall on the local cluster
	$(UV) run --frozen pytest tests/unit/chart tests/process/chart tests/cluster/chart -q

build-images: ## build the operator, gateway, predictor (and dev MLflow) images with buildah, podman or docker as IMAGE_REGISTRY/ferry-X:IMAGE_TAG
	@tool=$$(command -v buildah || command -v podman || { docker info >/dev/null 2>&1 && command -v docker; } || true); \
	if [ -z "$$tool" ]; then echo "images: no buildah, podman or running docker found; install one to build images" >&2; exit 1; fi; \
	for c in $(IMAGES); do \
	  echo "==> $$(basename $$tool) build ferry-$$c"; \
	  case $$(basename $$tool) in buildah) sub="bud";; *) sub="build";; esac; \
	  case $$c in mlflow) file="-f mlflow/Containerfile";; *) file="-f Containerfile --build-arg COMPONENT=$$c";; esac; \
	  $$tool $$sub $$file -t $(IMAGE_REGISTRY)/ferry-$$c:$(IMAGE_TAG) . || exit 1; \
	done

start-kind: ## (laptops with Docker) create a kind cluster named ferry and load the images into it
	@command -v kind >/dev/null || { echo "start-kind: kind is not installed (https://kind.sigs.k8s.io); this machine uses make start-cluster" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "start-kind: no running Docker engine; kind needs one" >&2; exit 1; }
	kind get clusters | grep -qx ferry || kind create cluster --name ferry
	@for c in $(IMAGES); do kind load docker-image --name ferry $(IMAGE_REGISTRY)/ferry-$$c:$(IMAGE_TAG) || echo "start-kind: ferry-$$c not built (make build-images)"; done

stop-kind: ## delete the kind cluster named ferry
	@command -v kind >/dev/null || { echo "stop-kind: kind is not installed; nothing to delete" >&2; exit 1; }
	kind delete cluster --name ferry

deploy: ## helm upgrade --install the chart with values-ENV.yaml (ENV=dev|staging|prod) into NAMESPACE of KUBECONFIG
	@case "$(ENV)" in dev|staging|prod) ;; *) echo "deploy: ENV must be dev, staging or prod (got '$(ENV)')" >&2; exit 2;; esac
	PATH=$(CHART_PATH) helm upgrade --install $(RELEASE) $(CHART_DIR) --namespace $(NAMESPACE) --create-namespace \
	  -f $(CHART_DIR)/values-$(ENV).yaml --set image.tag=$(IMAGE_TAG) --wait --timeout 5m
