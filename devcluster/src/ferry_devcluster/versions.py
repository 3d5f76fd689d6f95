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

# KServe's go.mod carries this exclude; `go build` of its manager from another module only
# succeeds when the consuming module repeats it.
KSERVE_EXCLUDES = ("google.golang.org/grpc/stats/opentelemetry v0.0.0-00010101000000-000000000000",)
