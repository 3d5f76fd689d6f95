# Ferry's single entry point. `make help` lists the targets by section.
# Component targets live in mk/*.mk, one file per component, included below.
#
# Target names: `<verb>-<component>` (start-cluster, test-unit, bench-gateway, run-gateway, ...).
# The few one-word targets are the verbs a newcomer types first and need no component: up, down,
# demo, test, lint, fmt, deps, tools, train, bench, deploy, run, generate, verify, help. A `##@ Section` line sets the `make help`
# section of the targets below it in that file.

SHELL := /bin/bash
.DEFAULT_GOAL := help
export GOTOOLCHAIN := local
export PATH := $(HOME)/.local/bin:$(PATH)

UV ?= uv
PY := $(UV) run --frozen python
# The local clusters, `make up` and `make demo`: the dev-only workspace member devcluster/.
DEVCLUSTER := $(PY) -m ferry_devcluster
export KUBECONFIG ?= $(CURDIR)/.local/kubeconfig

# Sections in this order; any other a file names comes after them.
HELP_SECTIONS := General Run Test Cluster Build

##@ General

.PHONY: help
help: ## list the targets, by section
	@awk -v order="$(HELP_SECTIONS)" ' \
	  BEGIN { FS = ":.*## "; n = split(order, sections, " "); for (i = 1; i <= n; i++) known[sections[i]] = 1 } \
	  FNR == 1 { section = "Other" } \
	  /^##@ / { section = substr($$0, 5); next } \
	  /^[a-zA-Z0-9_-]+:.*## / { \
	    if (!(section in known)) { known[section] = 1; sections[++n] = section } \
	    lines[section] = lines[section] sprintf("  \033[36m%-18s\033[0m %s\n", $$1, $$2) } \
	  END { for (i = 1; i <= n; i++) if (sections[i] in lines) printf "\n\033[1m%s\033[0m\n%s", sections[i], lines[sections[i]] }' \
	  $(MAKEFILE_LIST)

# The newcomer's commands first in `make help`, then every other mk/*.mk.
MK_FIRST := mk/stack.mk mk/demo.mk mk/test.mk mk/cluster.mk
include $(MK_FIRST) $(filter-out $(MK_FIRST),$(sort $(wildcard mk/*.mk)))
