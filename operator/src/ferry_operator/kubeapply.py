"""Server-side apply (or delete) YAML files: `make install-crds`/`uninstall-crds`, without needing kubectl.

Server-side apply because the CRDs carry long schemas that would overflow the
last-applied-configuration annotation of a client-side apply.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import config as kube_config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

FIELD_MANAGER = "ferry-install"


def load_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for f in files:
            docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


def client(kubeconfig: str | None) -> DynamicClient:
    return DynamicClient(kube_config.new_client_from_config(config_file=kubeconfig))


def apply(dyn: DynamicClient, docs: list[dict[str, Any]], namespace: str | None = None) -> list[str]:
    done = []
    for doc in docs:
        res = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        ns = doc["metadata"].get("namespace", namespace) if res.namespaced else None
        dyn.server_side_apply(
            res,
            body=doc,
            name=doc["metadata"]["name"],
            namespace=ns,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        done.append(f"{doc['kind']}/{doc['metadata']['name']}")
    return done


def delete(dyn: DynamicClient, docs: list[dict[str, Any]], namespace: str | None = None) -> list[str]:
    done = []
    for doc in docs:
        res = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        ns = doc["metadata"].get("namespace", namespace) if res.namespaced else None
        try:
            dyn.delete(res, name=doc["metadata"]["name"], namespace=ns)
            done.append(f"{doc['kind']}/{doc['metadata']['name']}")
        except NotFoundError:
            pass
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ferry_operator.kubeapply", description="Server-side apply YAML files or directories."
    )
    parser.add_argument("paths", nargs="+", type=Path, help="YAML files or directories of *.yaml")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig path (default: $KUBECONFIG)")
    parser.add_argument("-n", "--namespace", default="default", help="namespace for namespaced objects")
    parser.add_argument("--delete", action="store_true", help="delete the objects instead of applying them")
    args = parser.parse_args(argv)
    dyn = client(args.kubeconfig)
    docs = load_documents(args.paths)
    action = delete if args.delete else apply
    for name in action(dyn, docs, args.namespace):
        print(f"{'deleted' if args.delete else 'applied'} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
