"""Issue 13, finding 12: the gateway's body limit and the predictor's are one number, so the
gateway never spends a caller's quota on a body the predictor is sure to refuse with 413."""

from __future__ import annotations

from ferry_common.contract import MAX_BODY_BYTES
from ferry_gateway import config
from ferry_gateway.app import Gateway


def test_the_gateway_refuses_bodies_past_the_shared_limit_by_default() -> None:
    assert config.load(environ={}).max_body_bytes == MAX_BODY_BYTES
    assert config.Settings().max_body_bytes == MAX_BODY_BYTES
    # the app's own default, for whoever builds a Gateway without the settings
    assert Gateway.__init__.__kwdefaults__["max_body_bytes"] == MAX_BODY_BYTES
