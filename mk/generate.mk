# Every generated file (CRDs, runtime, dashboards, alert rules, values schema, plain install
# manifests) from its one source: python -m ferry_generate (the dev-only generate/ member).

# Where `make verify` looks (the test of the check points it at a copy of the tree).
GENERATE_ROOT ?= .
# helm renders manifests/install; CHART_PATH (mk/chart.mk) puts the project's own build first.
GENERATE := PATH=$(CHART_PATH) $(PY) -m ferry_generate --root "$(GENERATE_ROOT)"

.PHONY: generate generate-crds verify

##@ Generate

generate: ## write every generated file from its source (CRDs, runtime, dashboards, alerts, values schema, manifests/install)
	$(GENERATE)

generate-crds: ## write only the CRDs and the runtime manifests (no helm needed; `make install-crds` runs it)
	$(GENERATE) --only crds

verify: ## fail naming each generated file that is stale or edited by hand (run `make generate`)
	@$(GENERATE) --check
