"""A smoke tester for kwok-simulated pods (they have no HTTP endpoint to call).

The verdict comes from the ModelDeployment's annotation ``test.ferry.dev/smoke``: ``fail:<why>``
fails the check, anything else passes. Selected with ``FERRY_SMOKE_TESTER=fake_smoke:factory``.
"""

from __future__ import annotations

from ferry_operator.smoketest import SmokeOutcome, SmokeTarget

ANNOTATION = "test.ferry.dev/smoke"


class AnnotationSmokeTester:
    async def run(self, target: SmokeTarget) -> SmokeOutcome:
        verdict = (target.md_body["metadata"].get("annotations") or {}).get(ANNOTATION, "pass")
        if verdict.startswith("fail"):
            return SmokeOutcome(False, verdict.partition(":")[2] or "failed by the test")
        return SmokeOutcome(True, f"fake smoke test passed for {target.isvc} (version {target.version})")


def factory() -> AnnotationSmokeTester:
    return AnnotationSmokeTester()
