from datetime import datetime

from ferry_common.errors import HTTP_STATUS, ErrorCode, FerryError, FieldError


def test_every_code_has_an_http_status() -> None:
    assert set(HTTP_STATUS) == set(ErrorCode)
    assert all(400 <= s < 600 for s in HTTP_STATUS.values())


def test_envelope_carries_field_details_and_a_parseable_timestamp() -> None:
    err = FerryError(ErrorCode.INVALID_INPUT, "bad row", [FieldError("instances[0].age", "must be <= 120")])
    body = err.envelope(request_id="abc")
    assert body["error_code"] == "INVALID_INPUT"
    assert body["details"] == [{"field": "instances[0].age", "reason": "must be <= 120"}]
    assert body["request_id"] == "abc"
    assert datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).tzinfo is not None
    assert err.status == 422


def test_request_ids_are_generated_when_absent() -> None:
    a = FerryError(ErrorCode.INTERNAL, "x").envelope()
    b = FerryError(ErrorCode.INTERNAL, "x").envelope()
    assert a["request_id"] != b["request_id"]
