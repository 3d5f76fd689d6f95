"""A real single-node Kubernetes control plane built from upstream Go modules, run as local processes."""
