"""The one place where the local cluster's upstream versions are pinned.

Every binary is built from its published Go module at exactly these versions and cached under
a directory named after the version, so bumping a line here rebuilds only that tool.
"""

from __future__ import annotations

KUBERNETES = "v1.36.3"
ETCD = "v3.6.16"
KWOK = "v0.8.0"
HELM = "v3.22.0"
KSERVE = "v0.17.0"
COREDNS = "v1.15.0"
METRICS_SERVER = "v0.9.0"
# The real node's NetworkPolicy agent; only its network-policy controller runs (node.py). The
# Go module proxy serves no later v2 release. Advisories against v2.1.0 name the controllers we
# leave off: the service proxy's unvalidated externalIPs/LoadBalancer IPs (GHSA-phqm-jgc3-qf8g,
# --run-service-proxy) and the router's unauthenticated GoBGP gRPC on the node IP
# (GHSA-v5mh-h5hx-7v92, --run-router). kube-network-policies, the agent kind ships, needs the
# kernel's nft `queue` expression (CONFIG_NFT_QUEUE), which the kernels we run on lack.
KUBE_ROUTER = "v2.1.0"

# KServe's go.mod carries this exclude; `go build` of its manager from another module only
# succeeds when the consuming module repeats it.
KSERVE_EXCLUDES = ("google.golang.org/grpc/stats/opentelemetry v0.0.0-00010101000000-000000000000",)
