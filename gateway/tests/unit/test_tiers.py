"""Tiers and per-model overrides: parsing the limits file and the documented defaults (pure)."""

from __future__ import annotations

import pytest
from ferry_gateway.limits.tiers import LimitsConfig, TierLimits, parse_limits


def test_tier_for_unknown_name_is_a_clear_error() -> None:
    from ferry_common.errors import FerryError

    with pytest.raises(FerryError) as err:
        LimitsConfig().tier("platinum")
    assert err.value.details[0].field == "tier"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"tiers": {"x": {"perMinute": 0}}}, "tiers.x.perMinute"),
        ({"tiers": {"x": {"perMinute": "10"}}}, "tiers.x.perMinute"),
        ({"tiers": {"x": {"burst": 10}}}, "tiers.x.burst"),
        ({"tiers": {"x": {"perminute": 10}}}, "unknown keys"),
        ({"models": {"m": {"gold": {"perMinute": 1}}}}, "models.m.gold"),
        ({"tier": {}}, "unknown keys"),
    ],
)
def test_limits_config_errors_name_the_field(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        parse_limits(raw)


def test_defaults_match_the_documented_tiers() -> None:
    tiers = LimitsConfig().tiers
    assert tiers["free"] == TierLimits("free", 60, 100, 1_000)
    assert tiers["basic"] == TierLimits("basic", 300, 500, 10_000)
    assert tiers["pro"] == TierLimits("pro", 1_000, 2_000, 100_000)
    assert tiers["enterprise"].unlimited
