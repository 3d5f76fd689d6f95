"""Signature and constraint validation: every bad field is named with its reason."""

from __future__ import annotations

from typing import Any

import pytest
from ferry_common.errors import ErrorCode, FerryError
from ferry_predictor.schema import MAX_DETAILS, Column, InputSchema, from_mlflow
from hypothesis import given
from hypothesis import strategies as st

SIGNATURE = [
    {"type": "long", "name": "pclass", "required": True},
    {"type": "string", "name": "sex", "required": True},
    {"type": "double", "name": "age", "required": False},
    {"type": "long", "name": "sibsp", "required": True},
    {"type": "boolean", "name": "vip", "required": False},
]
CONSTRAINTS = {
    "pclass": {"enum": [1, 2, 3]},
    "sex": {"enum": ["male", "female"]},
    "age": {"min": 0, "max": 120},
    "sibsp": {"min": 0},
}
SCHEMA = from_mlflow(SIGNATURE, CONSTRAINTS)
GOOD = {"pclass": 1, "sex": "female", "age": 29.0, "sibsp": 0}


def details(exc: pytest.ExceptionInfo[FerryError]) -> dict[str, str]:
    assert exc.value.code is ErrorCode.INVALID_INPUT
    assert exc.value.status == 422
    return {d.field: d.reason for d in exc.value.details}


def test_valid_rows_come_out_as_columns_in_signature_order() -> None:
    batch = SCHEMA.validate_records(
        [GOOD, {"pclass": 3, "sex": "male", "sibsp": 2, "vip": True}], "instances"
    )
    assert batch.rows == 2
    assert list(batch.columns) == ["pclass", "sex", "age", "sibsp", "vip"]
    assert batch.columns["age"] == [29.0, None]
    assert batch.columns["vip"] == [None, True]


def test_arrays_are_read_in_signature_order() -> None:
    batch = SCHEMA.validate_records([[2, "male", 40, 1, False]], "instances")
    assert batch.columns == {"pclass": [2], "sex": ["male"], "age": [40.0], "sibsp": [1], "vip": [False]}


def test_integral_floats_are_accepted_for_integer_columns_and_ints_for_doubles() -> None:
    batch = SCHEMA.validate_records([{**GOOD, "pclass": 2.0, "age": 30}], "instances")
    assert batch.columns["pclass"] == [2] and isinstance(batch.columns["pclass"][0], int)
    assert batch.columns["age"] == [30.0] and isinstance(batch.columns["age"][0], float)


@pytest.mark.parametrize(
    ("change", "field", "reason_part"),
    [
        ({"pclass": 4}, "instances[0].pclass", "must be one of [1, 2, 3]"),
        ({"pclass": 1.5}, "instances[0].pclass", "must be an integer"),
        ({"pclass": True}, "instances[0].pclass", "got boolean"),
        ({"pclass": "1"}, "instances[0].pclass", "must be an integer, got string"),
        ({"sex": "M"}, "instances[0].sex", "must be one of ['male', 'female']"),
        ({"sex": 1}, "instances[0].sex", "must be a string"),
        ({"age": -1}, "instances[0].age", "must be >= 0"),
        ({"age": 121.5}, "instances[0].age", "must be <= 120"),
        ({"age": "old"}, "instances[0].age", "must be a number"),
        ({"age": [1]}, "instances[0].age", "got array"),
        ({"sibsp": -2}, "instances[0].sibsp", "must be >= 0"),
        ({"sibsp": None}, "instances[0].sibsp", "is required and must not be null"),
        ({"vip": "yes"}, "instances[0].vip", "must be a boolean"),
        ({"Age": 3}, "instances[0].Age", "unknown field"),
    ],
)
def test_each_bad_value_is_reported_on_its_field(
    change: dict[str, Any], field: str, reason_part: str
) -> None:
    with pytest.raises(FerryError) as exc:
        SCHEMA.validate_records([{**GOOD, **change}], "instances")
    assert reason_part in details(exc)[field]


def test_missing_required_fields_and_all_problems_are_reported_together() -> None:
    with pytest.raises(FerryError) as exc:
        SCHEMA.validate_records([GOOD, {"pclass": 9, "age": -3}], "instances")
    found = details(exc)
    assert set(found) == {"instances[1].pclass", "instances[1].sex", "instances[1].age", "instances[1].sibsp"}
    assert found["instances[1].sex"] == "required field is missing"


def test_rows_of_the_wrong_shape_are_rejected() -> None:
    with pytest.raises(FerryError) as exc:
        SCHEMA.validate_records([[1, "male"], "row", 3], "inputs")
    found = details(exc)
    assert "must have 5 values" in found["inputs[0]"]
    assert "must be an object or an array" in found["inputs[1]"]


def test_the_error_list_is_capped() -> None:
    with pytest.raises(FerryError) as exc:
        SCHEMA.validate_records([{"pclass": 0}] * 1000, "instances")
    assert len(exc.value.details) == MAX_DETAILS
    assert "+" in exc.value.message


def test_columnar_input_checks_lengths_and_names() -> None:
    cols: dict[str, list[Any]] = {"pclass": [1, 2], "sex": ["male", "female"], "sibsp": [0, 1]}
    paths = {k: f"inputs.{k}" for k in [*cols, "age", "vip", "bogus"]}
    assert SCHEMA.validate_columns(cols, paths).rows == 2
    with pytest.raises(FerryError) as exc:
        SCHEMA.validate_columns({**cols, "sex": ["male"]}, paths)
    assert "same length" in details(exc)["inputs"]
    with pytest.raises(FerryError) as exc:
        SCHEMA.validate_columns({"pclass": [7], "bogus": [1]}, paths)
    found = details(exc)
    assert "unknown input" in found["inputs.bogus"]
    assert found["inputs.sex"] == "required input is missing"
    assert "must be one of" in found["inputs.pclass[0]"]


def test_bad_signatures_and_constraints_are_refused_at_load() -> None:
    with pytest.raises(ValueError, match="unsupported type"):
        from_mlflow([{"name": "x", "type": "binary"}], {})
    with pytest.raises(ValueError, match="without a column name"):
        from_mlflow([{"type": "double"}], {})
    with pytest.raises(ValueError, match="lacks"):
        from_mlflow([{"name": "x", "type": "double"}], {"y": {"min": 0}})


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_double_column_accepts_exactly_the_range(value: float) -> None:
    col = Column("age", "double", enum=None, minimum=0, maximum=120)
    normalised, reason = col.check(value)
    if 0 <= value <= 120:
        assert reason is None and normalised == value
    else:
        assert reason is not None and normalised is None


@given(st.one_of(st.integers(), st.floats(allow_nan=False), st.text(), st.booleans(), st.none()))
def test_any_json_scalar_gets_a_verdict_never_a_crash(value: Any) -> None:
    schema = InputSchema((Column("n", "long", required=True, minimum=0),))
    try:
        batch = schema.validate_records([{"n": value}], "instances")
    except FerryError as exc:
        assert [d.field for d in exc.details] == ["instances[0].n"]
    else:
        assert isinstance(batch.columns["n"][0], int) and batch.columns["n"][0] >= 0


VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 200),
    st.floats(-5, 200),
    st.sampled_from(["male", "female", "M", ""]),
)
RECORD = st.dictionaries(
    st.sampled_from(["pclass", "sex", "age", "sibsp", "vip", "extra"]), VALUE, max_size=6
)


@given(st.lists(RECORD, min_size=1, max_size=8))
def test_the_quick_column_check_agrees_with_the_per_value_check(records: list[dict[str, Any]]) -> None:
    def outcome(fn: Any) -> Any:
        try:
            return fn(records, "instances").columns
        except FerryError as exc:
            return sorted((d.field, d.reason) for d in exc.details)

    quick = outcome(SCHEMA.validate_records)
    slow = outcome(SCHEMA._validate_records_slowly)
    assert quick == slow
    if isinstance(quick, dict):  # same values and same types (ints in double columns become floats)
        assert {k: [type(v) for v in vs] for k, vs in quick.items()} == {
            k: [type(v) for v in vs] for k, vs in slow.items()
        }
