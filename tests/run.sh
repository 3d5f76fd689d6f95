#!/usr/bin/env bash
# `make test`: lint and types, then each test tier in its own pytest run (unit, process, cluster,
# node; see the root conftest.py); prints how long each phase took. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
declare -a report=()
status=0

phase() {
  local name=$1; shift
  local t0=$SECONDS
  echo "==> $name"
  "$@"
  local rc=$?
  report+=("$(printf '%-10s %4ss  %s' "$name" $((SECONDS - t0)) "$([ $rc = 0 ] && echo ok || echo "FAILED ($rc)")")")
  [ $rc = 0 ] || status=1
  return $rc
}

phase lint make --no-print-directory lint
phase verify make --no-print-directory verify   # nothing generated is stale
for tier in unit process cluster node; do
  # pytest exits 5 when it collected nothing: a tier with no tests is a failure here, never a pass.
  phase "$tier" uv run --frozen pytest -m "$tier" --timeout=900 -p no:cacheprovider "$@"
done

echo
echo "==> timings"
printf '  %s\n' "${report[@]}"
exit $status
