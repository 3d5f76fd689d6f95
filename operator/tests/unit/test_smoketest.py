"""The HTTP smoke tester's verdicts (transport faked: this is the pure part)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from ferry_operator.resource import Color, SmokeTest
from ferry_operator.smoketest import HttpSmokeTester, SmokeTarget, example_as_v1, load_tester


def target(spec: SmokeTest, example: Any = None) -> SmokeTarget:
    async def get_example() -> Any:
        return example

    return SmokeTarget("ml", "titanic", {}, Color.green, "4", "titanic-green", spec, get_example)


def make_tester(
    handler: Any, seen: list[httpx.Request] | None = None, retry_seconds: float = 0.0
) -> HttpSmokeTester:
    def record(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return handler(request)  # type: ignore[no-any-return]

    return HttpSmokeTester(
        "http://{isvc}-predictor.{namespace}",
        transport=httpx.MockTransport(record),
        connect_retry_seconds=retry_seconds,
        connect_retry_interval=0.01,
    )


async def test_default_request_is_the_models_input_example() -> None:
    seen: list[httpx.Request] = []
    ok = make_tester(lambda r: httpx.Response(200, json={"predictions": [0.2]}), seen)
    example = {"columns": ["pclass", "sex"], "data": [[3, "male"]]}
    outcome = await ok.run(target(SmokeTest(), example))
    assert outcome.passed, outcome.message
    # The colour's own Service, but the public model name every colour answers to.
    assert str(seen[0].url) == "http://titanic-green-predictor.ml/v1/models/titanic:predict"
    assert json.loads(seen[0].content) == {"instances": [{"pclass": 3, "sex": "male"}]}


async def test_spec_requests_v1_and_v2_must_be_well_formed() -> None:
    spec = SmokeTest.model_validate(
        {
            "requests": [
                {"protocol": "v1", "body": {"instances": [[1]]}},
                {"protocol": "v2", "body": {"inputs": []}},
            ]
        }
    )

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/infer"):
            return httpx.Response(200, json={"outputs": [{"name": "p", "data": [1]}]})
        return httpx.Response(200, json={"predictions": [1]})

    assert (await make_tester(answer).run(target(spec))).passed
    bad_v2 = await make_tester(lambda r: httpx.Response(200, json={"predictions": [1]})).run(target(spec))
    assert not bad_v2.passed and "request 1 (v2): malformed" in bad_v2.message


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (httpx.Response(500, text="boom"), "HTTP 500"),
        (httpx.Response(200, text="not json"), "not JSON"),
        (httpx.Response(200, json={"error": "x"}), "malformed"),
    ],
)
async def test_failures_name_the_request_and_the_reason(response: httpx.Response, reason: str) -> None:
    spec = SmokeTest.model_validate({"requests": [{"body": {"instances": [1]}}]})
    outcome = await make_tester(lambda r: response).run(target(spec))
    assert not outcome.passed and reason in outcome.message and "request 0 (v1)" in outcome.message


ONE_REQUEST = SmokeTest.model_validate({"requests": [{"body": {}}]})


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout])
async def test_unreachable_preview_fails_the_check_once_the_retry_window_is_over(error: type) -> None:
    seen: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        raise error("refused", request=request)

    outcome = await make_tester(refuse, seen, retry_seconds=0.1).run(target(ONE_REQUEST))
    assert not outcome.passed
    assert f"{error.__name__} ({len(seen)} attempts in" in outcome.message, outcome.message
    assert len(seen) > 1


async def test_a_preview_not_reachable_yet_is_asked_again_until_it_answers() -> None:
    # A new operator pod's address is admitted by the network policy agent a moment after it
    # starts: the refusals before that are not the model's fault.
    seen: list[httpx.Request] = []

    def refuse_twice(request: httpx.Request) -> httpx.Response:
        if len(seen) <= 2:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"predictions": [1]})

    outcome = await make_tester(refuse_twice, seen, retry_seconds=5.0).run(target(ONE_REQUEST))
    assert outcome.passed, outcome.message
    assert len(seen) == 3


async def test_a_request_that_went_out_is_not_sent_again() -> None:
    seen: list[httpx.Request] = []

    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    outcome = await make_tester(time_out, seen, retry_seconds=5.0).run(target(ONE_REQUEST))
    assert not outcome.passed and "ReadTimeout" in outcome.message
    assert len(seen) == 1


async def test_no_requests_and_no_example_fails_clearly() -> None:
    outcome = await make_tester(lambda r: httpx.Response(200)).run(target(SmokeTest(), None))
    assert not outcome.passed and "no usable input example" in outcome.message


def test_example_shapes() -> None:
    assert example_as_v1({"dataframe_split": {"columns": ["a"], "data": [[1], [2]]}}) == {
        "instances": [{"a": 1}, {"a": 2}]
    }
    assert example_as_v1({"a": [1, 2], "b": ["x", "y"]}) == {
        "instances": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    }
    assert example_as_v1([1, 2]) is None


def test_tester_spec_is_validated() -> None:
    assert isinstance(load_tester("http", "http://x"), HttpSmokeTester)
    with pytest.raises(ValueError, match=r"package\.module:factory"):
        load_tester("nonsense", "http://x")
