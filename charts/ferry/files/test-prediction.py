# `helm test`: one prediction through the gateway (templates/tests/test-prediction.yaml runs this
# with `python -c` in the gateway's image). Exit 0 on HTTP 200 with a non-empty `predictions`
# array; otherwise exit 1 with one line saying what was wrong.
#
# A gateway that does not answer yet, or answers 502/503/504, is asked again until the timeout:
# right after a gateway pod turns Ready its Service endpoint and the NetworkPolicy agent's rules
# can lag by a few seconds, and `helm test` run then should not fail for that.
import json
import os
import sys
import time
import urllib.error
import urllib.request

TRANSIENT = {502, 503, 504}

url = os.environ["FERRY_TEST_URL"]
timeout = float(os.environ.get("FERRY_TEST_TIMEOUT", "30"))
deadline = time.monotonic() + timeout
attempts = 0


def ask() -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=os.environ["FERRY_TEST_BODY"].encode(),
        headers={"Content-Type": "application/json", "X-API-Key": os.environ["FERRY_TEST_API_KEY"]},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=max(deadline - time.monotonic(), 1.0)) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


while True:
    attempts += 1
    try:
        status, body = ask()
    except (urllib.error.URLError, OSError) as e:
        if time.monotonic() + 1 < deadline:
            time.sleep(1)
            continue
        sys.exit(
            f"FAIL: POST {url}: the gateway did not answer: {getattr(e, 'reason', e)}"
            f" ({attempts} attempts in {timeout:g} s)"
        )
    if status in TRANSIENT and time.monotonic() + 1 < deadline:
        time.sleep(1)
        continue
    break
text = body.decode(errors="replace")[:2000]
if status != 200:
    sys.exit(f"FAIL: POST {url}: HTTP {status} (want 200): {text}")
try:
    predictions = json.loads(body).get("predictions")
except (ValueError, AttributeError):
    predictions = None
if not isinstance(predictions, list) or not predictions:
    sys.exit(f"FAIL: POST {url}: HTTP 200 but no non-empty `predictions` array in the answer: {text}")
print(f"OK: POST {url}: HTTP 200, predictions {json.dumps(predictions)[:500]}")
