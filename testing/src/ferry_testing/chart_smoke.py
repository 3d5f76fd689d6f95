"""A passing smoke tester for predictors kwok only simulates (they have no HTTP endpoint).

Selected with ``FERRY_SMOKE_TESTER=ferry_testing.chart_smoke:factory`` by the chart tests' operators.
"""

from __future__ import annotations

from ferry_operator.smoketest import SmokeOutcome, SmokeTarget


class PassingSmokeTester:
    async def run(self, target: SmokeTarget) -> SmokeOutcome:
        return SmokeOutcome(True, f"kwok pod of {target.isvc} (version {target.version}) has no endpoint")


def factory() -> PassingSmokeTester:
    return PassingSmokeTester()
