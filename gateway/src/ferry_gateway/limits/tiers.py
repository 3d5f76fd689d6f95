"""Rate-limit tiers and per-model overrides: plain data, parsed from configuration.

A tier gives each consumer a per-minute rate with a burst allowance (GCRA) and a daily quota
counted per UTC day. ``None`` everywhere means unlimited (the enterprise tier).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ferry_common.errors import ErrorCode, FerryError, FieldError


@dataclass(frozen=True)
class TierLimits:
    name: str
    per_minute: int | None
    burst: int | None
    per_day: int | None

    @property
    def unlimited(self) -> bool:
        return self.per_minute is None and self.per_day is None


DEFAULT_TIERS: dict[str, TierLimits] = {
    "free": TierLimits("free", per_minute=60, burst=100, per_day=1_000),
    "basic": TierLimits("basic", per_minute=300, burst=500, per_day=10_000),
    "pro": TierLimits("pro", per_minute=1_000, burst=2_000, per_day=100_000),
    "enterprise": TierLimits("enterprise", per_minute=None, burst=None, per_day=None),
}


@dataclass(frozen=True)
class LimitsConfig:
    """Tiers by name, and per model: tier name -> extra limits that apply on top of the tier's."""

    tiers: dict[str, TierLimits] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    model_overrides: dict[str, dict[str, TierLimits]] = field(default_factory=dict)

    def tier(self, name: str) -> TierLimits:
        try:
            return self.tiers[name]
        except KeyError:
            raise FerryError(
                ErrorCode.FORBIDDEN,
                f"tier {name!r} is not configured on this gateway",
                [FieldError("tier", f"unknown tier; known: {', '.join(sorted(self.tiers))}")],
            ) from None

    def override(self, model: str, tier: str) -> TierLimits | None:
        return self.model_overrides.get(model, {}).get(tier)


def _opt_pos_int(raw: Mapping[str, Any], key: str, where: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{where}.{key}: must be a positive integer or null, got {value!r}")
    return value


def _parse_tier(name: str, raw: Any, where: str) -> TierLimits:
    if raw == "unlimited" or raw is None:
        return TierLimits(name, None, None, None)
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: must be a mapping with perMinute/burst/perDay or 'unlimited'")
    unknown = set(raw) - {"perMinute", "burst", "perDay"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: perMinute, burst, perDay")
    per_minute = _opt_pos_int(raw, "perMinute", where)
    if per_minute is not None and per_minute > 60_000_000:
        raise ValueError(f"{where}.perMinute: at most 60000000 (one per microsecond); use 'unlimited'")
    burst = _opt_pos_int(raw, "burst", where)
    if per_minute is not None and burst is None:
        burst = per_minute
    if per_minute is None and burst is not None:
        raise ValueError(f"{where}.burst: needs perMinute")
    return TierLimits(name, per_minute, burst, _opt_pos_int(raw, "perDay", where))


def parse_limits(raw: Mapping[str, Any] | None) -> LimitsConfig:
    """``{tiers: {NAME: {perMinute, burst, perDay} | unlimited}, models: {MODEL: {TIER: {...}}}}``.

    Tiers given here replace the defaults of the same name and add new ones; the rest keep
    their defaults. Raises ValueError naming the offending field.
    """
    raw = raw or {}
    unknown = set(raw) - {"tiers", "models"}
    if unknown:
        raise ValueError(f"limits: unknown keys {sorted(unknown)}; allowed: tiers, models")
    tiers = dict(DEFAULT_TIERS)
    for name, spec in (raw.get("tiers") or {}).items():
        tiers[str(name)] = _parse_tier(str(name), spec, f"tiers.{name}")
    overrides: dict[str, dict[str, TierLimits]] = {}
    for model, per_tier in (raw.get("models") or {}).items():
        if not isinstance(per_tier, Mapping):
            raise ValueError(f"models.{model}: must map tier names to limits")
        for tier_name, spec in per_tier.items():
            if tier_name not in tiers:
                raise ValueError(f"models.{model}.{tier_name}: unknown tier; known: {sorted(tiers)}")
            where = f"models.{model}.{tier_name}"
            overrides.setdefault(str(model), {})[str(tier_name)] = _parse_tier(str(tier_name), spec, where)
    return LimitsConfig(tiers, overrides)
