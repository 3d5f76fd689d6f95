# Ferry's single entry point. `make help` lists the targets.
# Component targets live in mk/*.mk, one file per component, included below.

SHELL := /bin/bash
.DEFAULT_GOAL := help
export GOTOOLCHAIN := local
export PATH := $(HOME)/.local/bin:$(PATH)

UV ?= uv
PY := $(UV) run --frozen python
LOCALCLUSTER := PYTHONPATH=tests/e2e $(PY) -m localcluster
export KUBECONFIG ?= $(CURDIR)/.local/kubeconfig

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

include $(wildcard mk/*.mk)
