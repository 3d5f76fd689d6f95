"""Who may call: the ``Consumer`` resource's schema (``crd``), the in-memory registry of consumers
and their key hashes (``registry``), fed from a YAML file or from the cluster (``k8s_source``)."""
