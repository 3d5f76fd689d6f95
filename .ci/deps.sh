#!/usr/bin/env bash
# Install what a brand-new machine lacks: Debian packages, uv, and the Python workspace.
# Quick when everything is present, so `make test` can always call it.
set -euo pipefail
cd "$(dirname "$0")/.."

# redis-server for the gateway suites; prometheus for the dashboard queries; chromium and its
# driver for the browser tests (CORS from another origin, Swagger UI at /docs); the rest make the
# real node (containers under runc on a CNI bridge, images from debootstrap + umoci, Ferry's own
# images from their Containerfiles with buildah; iptables and ipset for kube-proxy and kube-router's
# NetworkPolicy rules).
APT_PACKAGES=(redis-server prometheus chromium chromium-driver containerd runc containernetworking-plugins umoci debootstrap buildah iptables ipset iproute2)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "[deps] apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# redis-server's Debian service is not needed: tests start their own on free ports.

if ! command -v uv >/dev/null 2>&1; then
  echo "[deps] installing uv from PyPI"
  python3 -m pip install -q --disable-pip-version-check uv
fi
command -v go >/dev/null 2>&1 || { echo "[deps] Go 1.26 is required (go not on PATH)" >&2; exit 1; }
uv sync --frozen --quiet
