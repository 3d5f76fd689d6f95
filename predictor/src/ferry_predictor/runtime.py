"""The predictor's ClusterServingRuntime, defined once in ``ferry_common.runtime``."""

from ferry_common.runtime import DEFAULT_IMAGE, HTTP_PORT, METRICS_PORT, NAME, cluster_serving_runtime, main

__all__ = ["DEFAULT_IMAGE", "HTTP_PORT", "METRICS_PORT", "NAME", "cluster_serving_runtime", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
