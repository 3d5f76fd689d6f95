"""A smoke tester for kwok-simulated pods (they have no HTTP endpoint to call).

The verdict comes from the ModelDeployment's annotation ``test.ferry.dev/smoke``: ``fail:<why>``
fails the check, ``hold:<path>`` keeps the check pending (it touches ``<path>.waiting``, then
waits until ``<path>`` exists and takes the verdict from its content), anything else passes.
Selected with ``FERRY_SMOKE_TESTER=ferry_testing.smoke:factory`` (the operator tests' cluster tier).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ferry_operator.smoketest import SmokeOutcome, SmokeTarget

ANNOTATION = "test.ferry.dev/smoke"


class AnnotationSmokeTester:
    async def run(self, target: SmokeTarget) -> SmokeOutcome:
        verdict = (target.md_body["metadata"].get("annotations") or {}).get(ANNOTATION, "pass")
        if verdict.startswith("hold:"):
            # A test double: tiny local files, polled; blocking for microseconds is fine here.
            release = Path(verdict.partition(":")[2])
            Path(f"{release}.waiting").write_text(f"{target.isvc} {target.version}")  # noqa: ASYNC240
            while not release.exists():  # noqa: ASYNC110, ASYNC240
                await asyncio.sleep(0.2)
            verdict = release.read_text().strip() or "pass"  # noqa: ASYNC240
        if verdict.startswith("fail"):
            return SmokeOutcome(False, verdict.partition(":")[2] or "failed by the test")
        return SmokeOutcome(True, f"fake smoke test passed for {target.isvc} (version {target.version})")


def factory() -> AnnotationSmokeTester:
    return AnnotationSmokeTester()
