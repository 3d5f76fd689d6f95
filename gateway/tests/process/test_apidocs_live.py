"""The live API documentation against real predictors: two ``ferry-predictor`` processes serving
Titanic version 1 (blue) and version 2 (green) from a real MLflow registry (``colours`` in
conftest.py), a gateway routing by
the ModelDeployment catalog. The document follows a promotion to the new version's signature,
follows the upstreams in dev mode, and Swagger UI renders it in headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ferry_devcluster.procs import free_port, wait_for
from ferry_gateway.apidocs import fetch_metadata
from ferry_gateway.consumers.registry import Consumer, ConsumerRegistry
from ferry_gateway.upstream.catalog import ModelCatalog
from ferry_gateway.upstream.routing import Upstreams
from ferry_testing import browser
from ferry_testing.gateway import PEPPER, GatewayServer, Keys, build_app, consumer_index
from ferry_testing.gateway_colours import LoopbackServices, md
from ferry_testing.predictor import Predictor
from selenium import webdriver
from selenium.webdriver.common.by import By

KEYS = Keys()
COLUMNS = ["pclass", "sex", "age", "sibsp", "parch", "fare", "embarked"]


def gateway(upstreams: Upstreams, catalog: ModelCatalog | None = None) -> GatewayServer:
    consumers = [Consumer("ops", "enterprise", frozenset({"predict", "preview"}))]
    app = build_app(
        None,
        registry=ConsumerRegistry(PEPPER, consumer_index(consumers, KEYS)),
        upstreams=upstreams,
        catalog=catalog,
    )
    app.docs.refresher.fetch = fetch_metadata  # as factory.py wires it (build_app leaves it out)
    app.docs.refresher.interval = 0.5  # dev mode's look-again period, and the retry delay
    return GatewayServer(app)


@pytest.fixture(scope="module")
def cluster_gateway(colours: dict[str, Predictor]) -> Iterator[tuple[GatewayServer, ModelCatalog]]:
    services = {f"titanic-{c}-predictor": p.url for c, p in colours.items()}
    catalog = ModelCatalog()
    gw = gateway(LoopbackServices(namespace="ml", services=services), catalog)
    yield gw, catalog
    gw.close()


def document(gw: GatewayServer) -> dict[str, Any]:
    resp = httpx.get(gw.url + "/openapi.json", timeout=10)
    assert resp.status_code == 200 and resp.headers["cache-control"] == "no-cache"
    doc: dict[str, Any] = resp.json()
    return doc


def described_version(gw: GatewayServer) -> str | None:
    op = document(gw)["paths"].get("/v1/models/titanic:predict", {}).get("post")
    return None if op is None else str(op["x-ferry-model-version"])


def wait_described(gw: GatewayServer, version: str | None) -> dict[str, Any]:
    wait_for(
        f"the document to describe titanic version {version}", lambda: described_version(gw) == version, 30
    )
    return document(gw)


def publish(gw: GatewayServer, catalog: ModelCatalog, objs: dict[str, Any]) -> None:
    gw.on_loop(lambda: catalog.update(objs))


def check_signature(doc: dict[str, Any], metadata: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    row = schemas["titanic.v1.instance"]
    assert list(row["properties"]) == COLUMNS
    inputs = {i["name"]: i for i in metadata["inputs"]}
    assert row["required"] == [c for c in COLUMNS if inputs[c]["parameters"]["required"]]
    assert set(row["required"]) < set(COLUMNS)  # the Titanic signature has optional columns
    assert row["properties"]["pclass"]["type"] == "integer" and row["properties"]["sex"]["type"] == "string"
    for c in COLUMNS:
        assert f"titanic.v2.input.{c}" in schemas
    examples = metadata.get("parameters", {}).get("examples")
    for protocol, path in (("v1", "/v1/models/titanic:predict"), ("v2", "/v2/models/titanic/infer")):
        media = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        # the predictor's own example (parameters.examples, when it gives one) is the example
        assert media.get("example") == (examples or {}).get(protocol)


def test_the_document_follows_a_promotion_to_the_new_versions_signature(
    cluster_gateway: tuple[GatewayServer, ModelCatalog], colours: dict[str, Predictor]
) -> None:
    gw, catalog = cluster_gateway
    assert described_version(gw) is None  # nothing listed yet: the generic document
    publish(gw, catalog, {"titanic": md(("blue", "1"))})
    doc = wait_described(gw, "1")
    check_signature(doc, httpx.get(colours["blue"].url + "/v2/models/titanic", timeout=10).json())
    assert "version 1" in doc["paths"]["/v2/models/titanic/infer"]["post"]["summary"]

    # green is previewed: the document still describes what the caller gets by default
    publish(gw, catalog, {"titanic": md(("blue", "1"), ("green", "2", True))})
    publish(gw, catalog, {"titanic": md(("green", "2"))})  # promoted
    doc = wait_described(gw, "2")
    check_signature(doc, httpx.get(colours["green"].url + "/v2/models/titanic", timeout=10).json())
    assert "version 2" in doc["paths"]["/v2/models/titanic/infer"]["post"]["summary"]

    publish(gw, catalog, {})  # the ModelDeployment is deleted
    doc = wait_described(gw, None)
    assert not any(k.startswith("titanic.") for k in doc["components"]["schemas"])


def test_dev_mode_describes_the_upstream_and_follows_it(colours: dict[str, Predictor]) -> None:
    # --upstream titanic=URL: nothing says when the predictor changes, so the gateway looks again
    gw = gateway(Upstreams({"titanic": colours["blue"].url}))
    try:
        wait_described(gw, "1")
        gw.app.upstreams.active["titanic"] = colours["green"].url  # what a restart with a new URL does
        wait_described(gw, "2")
    finally:
        gw.close()


def test_ferry_gateway_in_dev_mode_describes_its_upstream_at_start(
    colours: dict[str, Predictor], redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "FERRY_DEV_DIR": str(tmp_path / "dev")}
    log = tmp_path / "gateway.log"
    exe = Path(sys.executable).parent / "ferry-gateway"
    cmd = [str(exe), "--dev", "--port", str(port), "--upstream", f"titanic={colours['blue'].url}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"

        def describes_v1() -> bool:
            assert proc.poll() is None, log.read_text()
            op = httpx.get(url + "/openapi.json", timeout=5).json()["paths"].get("/v1/models/titanic:predict")
            return op is not None and op["post"]["x-ferry-model-version"] == "1"

        wait_for("ferry-gateway to describe titanic version 1", describes_v1, 30)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---- Swagger UI in a real browser -------------------------------------------------------------


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    with browser.chromium() as d:
        yield d


def page_text(driver: webdriver.Chrome) -> str:
    text: str = driver.execute_script("return document.body.innerText")
    return text


def click(driver: webdriver.Chrome, css: str) -> None:
    wait_for(f"{css} on the page", lambda: bool(driver.find_elements(By.CSS_SELECTOR, css)), 20)
    driver.execute_script(
        "arguments[0].scrollIntoView(); arguments[0].click();", driver.find_element(By.CSS_SELECTOR, css)
    )


def test_swagger_ui_renders_the_models_input_fields(
    cluster_gateway: tuple[GatewayServer, ModelCatalog], driver: webdriver.Chrome
) -> None:
    gw, catalog = cluster_gateway
    publish(gw, catalog, {"titanic": md(("blue", "1"))})
    wait_described(gw, "1")
    driver.get(gw.url + "/docs")
    wait_for("Swagger UI to render the operations", lambda: "predictV1_titanic" in driver.page_source, 30)
    # the operation, expanded: its request body shows the model's columns
    click(driver, "#operations-titanic-predictV1_titanic .opblock-summary-control")
    operation = "#operations-titanic-predictV1_titanic"
    wait_for(
        "the request body's example",
        lambda: "pclass" in driver.find_element(By.CSS_SELECTOR, operation).text,
        20,
    )
    body = driver.find_element(By.CSS_SELECTOR, operation).text
    for column in ("pclass", "sex", "age"):
        assert column in body, body
    # the schema of one instance, expanded in the Schemas section: every column, the optional ones marked
    click(driver, "[id='model-titanic.v1.instance'] .model-box-control")
    wait_for(
        "the instance schema",
        lambda: "embarked" in driver.find_element(By.CSS_SELECTOR, "[id='model-titanic.v1.instance']").text,
        20,
    )
    schema = driver.find_element(By.CSS_SELECTOR, "[id='model-titanic.v1.instance']").text
    for column in COLUMNS:
        assert column in schema, schema
    assert "pclass*" in schema and "age*" not in schema, schema  # required columns carry the star
    # a user pastes an API key (a bearer token would do too), tries the operation, gets a prediction
    assert try_it(driver, KEYS.by_consumer["ops"]) == "200"
    answer = driver.find_element(
        By.CSS_SELECTOR, "#operations-titanic-predictV1_titanic .live-responses-table"
    ).text
    assert '"predictions"' in answer, answer
    # and every file the page loaded came from the gateway itself
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(gw.url + "/") for u in urls), urls


PASSENGER = {"pclass": 3, "sex": "male", "age": 22.0, "sibsp": 1, "parch": 0, "fare": 7.25, "embarked": "S"}
BODY = json.dumps({"instances": [PASSENGER]})


def try_it(driver: webdriver.Chrome, key: str) -> str:
    """Authorize with the API key, then "Try it out" on the v1 predict operation; the status shown."""
    operation = "#operations-titanic-predictV1_titanic"
    click(driver, ".auth-wrapper .authorize")
    wait_for(
        "the authorize dialog",
        lambda: bool(driver.find_elements(By.CSS_SELECTOR, ".modal-ux .auth-container")),
        20,
    )
    schemes = driver.find_element(By.CSS_SELECTOR, ".modal-ux").text
    assert "bearer" in schemes and "apiKey" in schemes, schemes
    box = next(
        b for b in driver.find_elements(By.CSS_SELECTOR, ".modal-ux .auth-container") if "X-API-Key" in b.text
    )
    box.find_element(By.CSS_SELECTOR, "input").send_keys(key)
    box.find_element(By.CSS_SELECTOR, "button.authorize").click()
    click(driver, ".modal-ux button.close-modal")
    if not driver.find_elements(By.CSS_SELECTOR, f"{operation} .opblock-body"):
        click(driver, f"{operation} .opblock-summary-control")
    click(driver, f"{operation} button.try-out__btn")
    text = driver.find_element(By.CSS_SELECTOR, f"{operation} textarea.body-param__text")
    text.clear()
    text.send_keys(BODY)
    click(driver, f"{operation} button.execute")
    status = f"{operation} .live-responses-table .response .response-col_status"
    wait_for("the live response", lambda: bool(driver.find_elements(By.CSS_SELECTOR, status)), 30)
    return str(driver.find_element(By.CSS_SELECTOR, status).text).strip()
