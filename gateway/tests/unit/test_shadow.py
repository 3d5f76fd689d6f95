"""Shadow traffic's pure parts: which requests are mirrored, and when two answers agree."""

from __future__ import annotations

import uuid

import pytest
from ferry_gateway.shadow.compare import compare, predictions
from ferry_gateway.shadow.sampling import mirrored
from hypothesis import given
from hypothesis import strategies as st

IDS = [str(uuid.UUID(int=i)) for i in range(20_000)]


@pytest.mark.parametrize("percent", [1, 5, 20, 50, 90])
def test_about_the_configured_share_is_mirrored(percent: float) -> None:
    share = sum(mirrored(i, "7", percent) for i in IDS) / len(IDS)
    assert abs(share - percent / 100) < 0.01, share


def test_none_and_all() -> None:
    assert not any(mirrored(i, "7", 0) for i in IDS[:1000])
    assert all(mirrored(i, "7", 100) for i in IDS[:1000])


def test_each_rollout_picks_its_own_requests() -> None:
    first = {i for i in IDS if mirrored(i, "7", 20)}
    second = {i for i in IDS if mirrored(i, "8", 20)}
    assert first != second and len(first & second) < len(first) * 0.3


@given(st.text(max_size=40), st.text(max_size=8), st.floats(0, 100), st.floats(0, 100))
def test_a_larger_share_keeps_the_smaller_ones_requests(
    request_id: str, rollout: str, p: float, q: float
) -> None:
    low, high = sorted((p, q))
    if mirrored(request_id, rollout, low):
        assert mirrored(request_id, rollout, high)


def v2(data: list[object], name: str = "predictions") -> dict[str, object]:
    return {
        "model_name": "m",
        "outputs": [{"name": name, "datatype": "INT64", "shape": [len(data)], "data": data}],
    }


def test_labels_must_be_equal() -> None:
    assert compare({"predictions": [0, 1, 1]}, {"predictions": [0, 1, 1]}).agreed
    flipped = compare({"predictions": [0, 1, 1]}, {"predictions": [1, 0, 0]})
    assert not flipped.agreed and flipped.reason == "predictions[0] differs"
    assert not compare({"predictions": ["cat"]}, {"predictions": ["dog"]}).agreed
    assert not compare({"predictions": [True]}, {"predictions": [1]}).agreed


def test_real_numbers_agree_within_the_tolerance() -> None:
    assert compare({"predictions": [0.5]}, {"predictions": [0.5000000001]}).agreed
    assert compare({"predictions": [1]}, {"predictions": [1.0]}).agreed
    assert not compare({"predictions": [0.5]}, {"predictions": [0.52]}).agreed
    assert compare({"predictions": [0.5]}, {"predictions": [0.52]}, tolerance=0.05).agreed
    assert compare({"predictions": [[0.2, 0.8]]}, {"predictions": [[0.2, 0.8]]}).agreed


def test_v2_outputs_are_compared_by_name_and_shape() -> None:
    assert compare(v2([1, 0]), v2([1, 0])).agreed
    assert not compare(v2([1, 0]), v2([1, 1])).agreed
    assert compare(v2([1, 0]), v2([1, 0, 1])).reason == "predictions: 3 rows, not 2"
    assert compare(v2([1]), v2([1], name="label")).reason == "other outputs"


@pytest.mark.parametrize("preview", [None, {}, {"error": "x"}, {"outputs": [{"name": "p"}]}, "text", []])
def test_an_answer_that_is_no_prediction_never_agrees(preview: object) -> None:
    assert predictions(preview) is None
    assert compare({"predictions": [1]}, preview).reason == "not a prediction"


scalars = st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=5), st.booleans())
rows = st.lists(st.one_of(scalars, st.lists(scalars, max_size=3)), max_size=10)


@given(rows)
def test_an_answer_agrees_with_itself(values: list[object]) -> None:
    assert compare({"predictions": values}, {"predictions": values}).agreed
    assert compare(v2(values), v2(values)).agreed
