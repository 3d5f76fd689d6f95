# Gateway targets (owner: gateway). See gateway/src/ferry_gateway and `ferry-gateway --help`.

GATEWAY_PORT ?= 8080
# Models to route in dev mode, as NAME=URL (space-separated), e.g. a predictor from `make run-predictor`.
GATEWAY_UPSTREAMS ?= titanic=http://127.0.0.1:8081

.PHONY: run-gateway bench-gateway test-gateway lint-gateway

##@ Gateway

run-gateway: ## gateway in dev mode on GATEWAY_PORT (REDIS_URL from env, dev consumers, GATEWAY_UPSTREAMS)
	$(UV) run --frozen ferry-gateway --dev --port $(GATEWAY_PORT) $(foreach u,$(GATEWAY_UPSTREAMS),--upstream $(u))

bench-gateway: ## gateway overhead vs direct (c=1/32/128), req/s, Redis round trips -> .local/bench/gateway.json
	@command -v wrk >/dev/null || { echo "installing wrk (Debian)"; apt-get install -y -qq wrk >/dev/null || sudo apt-get install -y -qq wrk; }
	$(PY) gateway/bench/bench_gateway.py --out .local/bench/gateway.json

test-gateway: ## gateway tests: real Redis, loopback upstreams, JWT attacks, OpenAPI fuzzing
	$(UV) run --frozen pytest gateway/tests -q

lint-gateway: ## ruff + mypy (strict) on the gateway
	$(UV) run --frozen ruff check gateway && $(UV) run --frozen ruff format --check gateway && $(UV) run --frozen mypy gateway/src gateway/tests gateway/bench

