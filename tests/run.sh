#!/usr/bin/env bash
# `make test`: lint and types, then every pytest suite; prints how long each phase took.
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
# pytest exits 5 when it collected nothing: that is a failure here, never a pass.
phase pytest uv run --frozen pytest --timeout=900 -p no:cacheprovider "$@"

echo
echo "==> timings"
printf '  %s\n' "${report[@]}"
exit $status
