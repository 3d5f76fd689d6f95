# `helm test`: one prediction through the gateway (templates/tests/test-prediction.yaml runs this
# with `python -c` in the gateway's image). Exit 0 on HTTP 200 with a non-empty `predictions`
# array; otherwise exit 1 with one line saying what was wrong.
import json
import os
import sys
import urllib.error
import urllib.request

url = os.environ["FERRY_TEST_URL"]
request = urllib.request.Request(
    url,
    data=os.environ["FERRY_TEST_BODY"].encode(),
    headers={"Content-Type": "application/json", "X-API-Key": os.environ["FERRY_TEST_API_KEY"]},
    method="POST",
)
try:
    with urllib.request.urlopen(request, timeout=float(os.environ.get("FERRY_TEST_TIMEOUT", "30"))) as r:
        status, body = r.status, r.read()
except urllib.error.HTTPError as e:
    status, body = e.code, e.read()
except (urllib.error.URLError, OSError) as e:
    sys.exit(f"FAIL: POST {url}: the gateway did not answer: {getattr(e, 'reason', e)}")
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
