"""Start and stop the local control plane as plain processes.

etcd -> kube-apiserver -> (controller-manager, scheduler, and kwok's fake node or a real node)
-> KServe's controller with its CRDs, configuration and webhooks. Ports are chosen free at first
start and recorded in ``<root>/cluster/state.json`` so two checkouts can each run a cluster, and
so ``up`` can tell a healthy cluster (reuse it) from a half-dead one (restart it).

Two flavours share all of this: ``kwok`` (the default, under ``.local/``: fake nodes, pods become
Ready without running, fast) and ``real`` (under ``.local/e2e/``: a kubelet with containerd, runc
and CNI, so containers really run; see ``node.py``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import node, pki, tools, versions
from .paths import local_dir
from .procs import alive, free_port, port_open, wait_for

SERVICE_CIDR = "10.96.0.0/16"
KWOK_NODE = "kwok-node-0"
KSERVE_NAMESPACE = "kserve"
READY = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
# Every listening port a cluster needs, chosen free at first start (recorded in state.json).
PORTS = (
    "etcd",
    "etcd_peer",
    "apiserver",
    "kcm",
    "sched",
    "kwok",
    "kserve_webhook",
    "kserve_metrics",
    "kserve_probe",
    "kubelet",
    "kubelet_healthz",
    "proxy_metrics",
    "proxy_healthz",
    "metrics_server",
)


def log(msg: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {msg}", flush=True)


NODE_KINDS = ("kwok", "real")


def root_for(node: str) -> Path:
    return local_dir() if node == "kwok" else local_dir() / "e2e"


def default_node() -> str:
    """The flavour when none is named: FERRY_NODE, else kwok."""
    return os.environ.get("FERRY_NODE", "kwok")


@dataclass
class State:
    """What a running cluster recorded: its ports and the pids of its processes."""

    path: Path
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> State | None:
        try:
            return cls(path, **json.loads(path.read_text()))
        except FileNotFoundError:
            return None

    def save(self) -> None:
        self.path.write_text(json.dumps({"ports": self.ports, "pids": self.pids}, indent=2))


def _kubeconfig(server: str, ca: Path, cert: Path, key: Path) -> str:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "ferry-local", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}
            ],
            "users": [
                {
                    "name": "ferry-admin",
                    "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
                }
            ],
            "contexts": [
                {"name": "ferry-local", "context": {"cluster": "ferry-local", "user": "ferry-admin"}}
            ],
            "current-context": "ferry-local",
        }
    )


@dataclass(frozen=True)
class Certs:
    """The certificates one start issues from the cluster's CA (paths under ``<state>/pki``)."""

    ca: pki.CA
    api: tuple[Path, Path]
    admin: tuple[Path, Path]
    front_proxy: tuple[Path, Path]
    webhook: tuple[Path, Path]
    sa_key: Path
    sa_pub: Path


class _Phases:
    """Times each start-up phase and logs "<phase> ready in N s"."""

    def __init__(self) -> None:
        self.took: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        self.took[name] = time.monotonic() - started
        log(f"{name} ready in {self.took[name]:.1f}s")


@dataclass(frozen=True)
class Cluster:
    """One flavour of the local cluster and where it lives.

    ``kwok`` (under ``.local/``): fake nodes, pods become Ready without running. ``real`` (under
    ``.local/e2e/``): a kubelet with containerd, runc and CNI (``node.py``). Every operation on a
    cluster is a method here, so which one is meant is always explicit.
    """

    node: str = "kwok"

    def __post_init__(self) -> None:
        if self.node not in NODE_KINDS:
            raise ValueError(f"unknown node kind {self.node!r}; expected one of {NODE_KINDS}")

    @property
    def real(self) -> bool:
        return self.node == "real"

    @property
    def root(self) -> Path:
        return root_for(self.node)

    @property
    def state_dir(self) -> Path:
        return self.root / "cluster"

    @property
    def kubeconfig_path(self) -> Path:
        """The user's kubeconfig: written last by ``up``, so its presence means "ready"."""
        return self.root / "kubeconfig"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    def state(self) -> State | None:
        return State.load(self.state_dir / "state.json")

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(tools.bin_path("kubectl")), f"--kubeconfig={self.admin_kubeconfig}", *args]
        proc = subprocess.run(cmd, input=input, text=True, capture_output=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def spawn(self, state: State, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # outlives `make start-cluster`; stopped by `down` via its group
            )
        state.pids[name] = proc.pid
        state.save()

    def running(self, state: State, name: str) -> bool:
        """True while the process lives; raises with its log tail once it has died."""
        pid = state.pids[name]
        if not alive(pid):
            tail = (self.state_dir / "logs" / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited during start-up; last log lines:\n{tail}")
        return True

    def is_up(self) -> bool:
        state = self.state()
        if state is None or not state.pids or not all(alive(p) for p in state.pids.values()):
            return False
        return (
            self.kubectl("get", "--raw=/readyz", check=False).returncode == 0
            and self.kubeconfig_path.exists()
        )

    def up(self) -> float:
        """Bring the cluster up (or confirm it is); return seconds taken.

        A start that fails is undone and tried once more: on a busy machine a component can lose a
        race for its port or miss a deadline, and a second start from scratch is cheap next to
        failing every suite that needs the cluster.
        """
        t0 = time.monotonic()
        if self.is_up():
            log(f"already up; kubeconfig: {self.kubeconfig_path}")
            return time.monotonic() - t0
        try:
            return self._start(t0)
        except (RuntimeError, TimeoutError) as exc:
            log(f"start failed ({str(exc)[:400]}); stopping what started and trying once more")
            self.down()
            return self._start(t0)

    def _start(self, t0: float) -> float:
        """One start from nothing, step by step; each step logs how long it took."""
        self._clear_leftovers()
        state = self._new_state()
        phase = _Phases()
        if self.real:
            node.prepare_host_network()
        # With a real node, pods reach the API server through the kubernetes Service, so it must
        # listen on the node's bridge address rather than loopback.
        api_ip = node.NODE_IP if self.real else "127.0.0.1"
        certs = self._issue_certs(f"https://{api_ip}:{state.ports['apiserver']}")
        with phase("etcd"):
            etcd_url = self._start_etcd(state)
        with phase("kube-apiserver"):
            self._start_apiserver(state, certs, etcd_url, api_ip)
        with phase("controllers + node"):
            self._start_controllers(state, certs)
            self._start_node(state, certs)
        with phase(f"kserve {versions.KSERVE}"):
            start_kserve(self, state, certs.ca.cert_path, *certs.webhook)
        self._publish_kubeconfig()
        total = time.monotonic() - t0
        log(f"cluster up in {total:.1f}s; export KUBECONFIG={self.kubeconfig_path}")
        return total

    def _clear_leftovers(self) -> None:
        """Stop a partly running cluster, build missing tools, and claim the machine's real node."""
        if self.state() is not None:
            log("found a partly running cluster; stopping it first")
            self.down()
        if not all(t.built() for t in tools.ALL):
            tools.ensure_tools()
        if self.real:
            node.preflight()
            node.claim(self.state_dir)  # before any state exists, so a refused start leaves nothing to undo

    def _new_state(self) -> State:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = State(self.state_dir / "state.json", ports={n: free_port() for n in PORTS})
        state.save()
        return state

    def _issue_certs(self, server: str) -> Certs:
        """The CA, every certificate the control plane needs, and the admin kubeconfig."""
        pkidir = self.state_dir / "pki"
        ca = pki.CA(pkidir)
        api = ca.issue(
            "apiserver",
            "kube-apiserver",
            server_names=(
                "127.0.0.1",
                "localhost",
                node.NODE_IP,
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
        )
        admin = ca.issue("admin", "ferry-admin", org="system:masters", client=True)
        # The aggregation layer (metrics.k8s.io) authenticates the API server to extension servers.
        front_proxy = ca.issue("front-proxy-client", "front-proxy-client", client=True)
        webhook = ca.issue("kserve-webhook", "kserve-webhook", server_names=("127.0.0.1", "localhost"))
        sa_key, sa_pub = pki.service_account_keys(pkidir)
        self.admin_kubeconfig.write_text(_kubeconfig(server, ca.cert_path, *admin))
        self.admin_kubeconfig.chmod(0o600)
        return Certs(ca, api, admin, front_proxy, webhook, sa_key, sa_pub)

    def _start_etcd(self, state: State) -> str:
        log(f"starting etcd {versions.ETCD}")
        etcd_url = f"http://127.0.0.1:{state.ports['etcd']}"
        peer_url = f"http://127.0.0.1:{state.ports['etcd_peer']}"
        self.spawn(
            state,
            "etcd",
            [
                str(tools.bin_path("etcd")),
                "--data-dir",
                str(self.state_dir / "etcd"),
                "--name",
                "ferry",
                "--listen-client-urls",
                etcd_url,
                "--advertise-client-urls",
                etcd_url,
                "--listen-peer-urls",
                peer_url,
                "--initial-advertise-peer-urls",
                peer_url,
                "--initial-cluster",
                f"ferry={peer_url}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes",
                str(4 << 30),
                "--log-level",
                "warn",
            ],
        )
        wait_for("etcd", lambda: self.running(state, "etcd") and port_open(state.ports["etcd"]), 30)
        return etcd_url

    def _start_apiserver(self, state: State, certs: Certs, etcd_url: str, api_ip: str) -> None:
        log(f"starting kube-apiserver {versions.KUBERNETES}")
        ca = certs.ca.cert_path
        api_crt, api_key = certs.api
        adm_crt, adm_key = certs.admin
        proxy_crt, proxy_key = certs.front_proxy
        self.spawn(
            state,
            "kube-apiserver",
            [
                str(tools.bin_path("kube-apiserver")),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={api_ip}",
                f"--advertise-address={api_ip}",
                f"--secure-port={state.ports['apiserver']}",
                f"--tls-cert-file={api_crt}",
                f"--tls-private-key-file={api_key}",
                f"--client-ca-file={ca}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={certs.sa_pub}",
                f"--service-account-signing-key-file={certs.sa_key}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                # Priority-and-fairness costs CPU that a two-core machine would rather spend on tests.
                "--enable-priority-and-fairness=false",
                f"--requestheader-client-ca-file={ca}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={proxy_crt}",
                f"--proxy-client-key-file={proxy_key}",
                # Reach extension servers at their endpoint, not through a ClusterIP the host may
                # not route.
                "--enable-aggregator-routing=true",
                # Logs and exec reach a real kubelet by its address (node names do not resolve here).
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-client-certificate={adm_crt}",
                f"--kubelet-client-key={adm_key}",
                f"--kubelet-certificate-authority={ca}",
                "--profiling=false",
                "--v=1",
            ],
        )
        wait_for(
            "kube-apiserver /readyz",
            lambda: (
                self.running(state, "kube-apiserver")
                and self.kubectl("get", "--raw=/readyz", check=False).returncode == 0
            ),
            90,
            0.3,
        )

    def _start_controllers(self, state: State, certs: Certs) -> None:
        """kube-controller-manager and kube-scheduler (their readiness is awaited with the node's)."""
        kc = str(self.admin_kubeconfig)
        self.spawn(
            state,
            "kube-controller-manager",
            [
                str(tools.bin_path("kube-controller-manager")),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={state.ports['kcm']}",
                f"--service-account-private-key-file={certs.sa_key}",
                f"--root-ca-file={certs.ca.cert_path}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--use-service-account-credentials=false",
                "--controllers=*,-bootstrapsigner,-tokencleaner",
                "--profiling=false",
                # Scale decisions within seconds, so HPA behaviour is observable in tests.
                "--horizontal-pod-autoscaler-sync-period=5s",
                # A two-core machine under a full test run can starve kwok's or kubelet's lease
                # renewals for tens of seconds; a node marked NotReady would evict every pod.
                "--node-monitor-grace-period=3m",
            ],
        )
        self.spawn(
            state,
            "kube-scheduler",
            [
                str(tools.bin_path("kube-scheduler")),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={state.ports['sched']}",
                "--profiling=false",
            ],
        )

    def _start_node(self, state: State, certs: Certs) -> None:
        """kwok's fake node or the real one; wait until it is Ready and pods can be admitted."""
        if self.real:
            node_name = node.start(self, state, certs.ca)
        else:
            start_kwok(self, state, str(self.admin_kubeconfig))
            node_name = KWOK_NODE
        wait_for(
            f"node {node_name} Ready",
            lambda: (
                all(self.running(state, n) for n in state.pids)
                and self.kubectl("get", "node", node_name, "-o", READY, check=False).stdout == "True"
            ),
            90,
            0.3,
        )
        if self.real:
            node.start_network_policies(self, state)
        wait_for(
            "default ServiceAccount",
            lambda: (
                self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0
            ),
            60,
            0.3,
        )

    def _publish_kubeconfig(self) -> None:
        self.kubeconfig_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.kubeconfig_path.with_suffix(".tmp")
        tmp.write_text(self.admin_kubeconfig.read_text())
        tmp.chmod(0o600)
        tmp.replace(self.kubeconfig_path)  # written last: its presence means "ready"

    def down(self) -> None:
        state = self.state()
        if state is not None:
            # Reverse start order, one at a time: clients go while the API server still answers, and
            # etcd outlives the API server, which otherwise hangs in its graceful shutdown.
            for name, pid in reversed(list(state.pids.items())):
                _terminate(name, pid)
        if self.real and node.owns(self.state_dir):
            node.cleanup(self.state_dir)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.kubeconfig_path.unlink(missing_ok=True)
        log("cluster down; state removed")


KWOK = Cluster("kwok")
REAL = Cluster("real")


def start_kwok(cluster: Cluster, state: State, kubeconfig: str) -> None:
    kwok_src = tools.kwok_dir() / "kustomize" / "stage"
    stages = [
        kwok_src / "node" / "fast" / "node-initialize.yaml",
        kwok_src / "node" / "heartbeat-with-lease" / "node-heartbeat-with-lease.yaml",
        *sorted((kwok_src / "pod" / "fast").glob("pod-*.yaml")),
    ]
    cluster.spawn(
        state,
        "kwok",
        [
            str(tools.bin_path("kwok")),
            f"--kubeconfig={kubeconfig}",
            *[f"--config={s}" for s in stages],
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            # The heartbeat-with-lease stage refreshes node status only every ~10 minutes and
            # relies on the Lease for liveness; without a lease duration kwok renews none, so the
            # node went NotReady after each grace period and its pods stayed NotReady for good.
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{state.ports['kwok']}",
            "--cidr=10.244.0.1/16",
            "--node-ip=10.0.0.1",
        ],
    )
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(fake_node(KWOK_NODE)))


def fake_node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": f"{versions.KUBERNETES}-kwok",
            },
        },
    }


def _kserve_config(src: Path) -> dict[str, Any]:
    """KServe's reference ConfigMap, switched to raw Deployments with no Istio or Ingress."""
    cm: dict[str, Any] = yaml.safe_load(src.read_text())
    data = cm["data"]
    data.pop("_example", None)
    data["deploy"] = json.dumps({"defaultDeploymentMode": "Standard"})
    ingress = json.loads(data["ingress"])
    ingress.update(
        {
            "disableIstioVirtualHost": True,
            "disableIngressCreation": True,
            "kserveIngressGateway": "kserve/kserve-ingress-gateway",
        }
    )
    data["ingress"] = json.dumps(ingress)
    cm["metadata"] = {"name": "inferenceservice-config", "namespace": KSERVE_NAMESPACE}
    return cm


def _webhook_configs(src: Path, port: int, ca_bundle: str) -> list[dict[str, Any]]:
    """KServe's webhook registrations, pointed at the local controller by URL."""
    out = []
    for doc in yaml.safe_load_all(src.read_text()):
        if not doc:
            continue
        doc["metadata"].pop("creationTimestamp", None)
        for hook in doc["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca_bundle}
            # KServe still names v1beta1 only; the API server speaks both and the
            # controller-runtime handler accepts v1.
            hook["admissionReviewVersions"] = ["v1", "v1beta1"]
        out.append(doc)
    return out


def start_kserve(cluster: Cluster, state: State, ca: Path, crt: Path, key: Path) -> None:
    t0 = time.monotonic()
    src = tools.kserve_dir() / "config"
    log("applying KServe CRDs (server-side: the InferenceService CRD is ~1 MB)")
    crds = [p for p in sorted((src / "crd" / "full").rglob("serving.kserve.io_*.yaml"))]
    cluster.kubectl("apply", "--server-side", "--force-conflicts", *[f"-f={c}" for c in crds])
    log(f"KServe CRDs applied in {time.monotonic() - t0:.1f}s")
    names = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in crds]
    established = "jsonpath={.status.conditions[?(@.type=='Established')].status}"

    def all_established() -> bool:
        return all(
            cluster.kubectl("get", "crd", n, "-o", established, check=False).stdout == "True" for n in names
        )

    # Polled rather than `kubectl wait`, which errors out on a CRD whose status is still empty.
    wait_for("KServe CRDs Established", all_established, 60, 0.2)
    log(f"KServe CRDs established in {time.monotonic() - t0:.1f}s")
    cluster.kubectl("create", "namespace", KSERVE_NAMESPACE, check=False)
    cluster.kubectl(
        "apply", "-f", "-", input=yaml.safe_dump(_kserve_config(src / "configmap" / "inferenceservice.yaml"))
    )

    # controller-runtime reads its webhook certificate from $TMPDIR/k8s-webhook-server/serving-certs.
    tmpdir = cluster.state_dir / "kserve-tmp"
    certdir = tmpdir / "k8s-webhook-server" / "serving-certs"
    certdir.mkdir(parents=True, exist_ok=True)
    (certdir / "tls.crt").write_bytes(crt.read_bytes())
    (certdir / "tls.key").write_bytes(key.read_bytes())
    cluster.spawn(
        state,
        "kserve-controller",
        [
            str(tools.bin_path("kserve-manager")),
            f"--webhook-port={state.ports['kserve_webhook']}",
            f"--metrics-addr=127.0.0.1:{state.ports['kserve_metrics']}",
            f"--health-probe-addr=127.0.0.1:{state.ports['kserve_probe']}",
            "--leader-elect=false",
        ],
        env={
            "KUBECONFIG": str(cluster.admin_kubeconfig),
            "POD_NAMESPACE": KSERVE_NAMESPACE,
            "TMPDIR": str(tmpdir),
        },
    )

    def webhook_serving() -> bool:
        cluster.running(state, "kserve-controller")
        return port_open(state.ports["kserve_webhook"])

    wait_for("KServe webhook server", webhook_serving, 90, 0.3)
    log(f"KServe controller serving webhooks after {time.monotonic() - t0:.1f}s")
    bundle = base64.b64encode(ca.read_bytes()).decode()
    hooks = _webhook_configs(src / "webhook" / "manifests.yaml", state.ports["kserve_webhook"], bundle)
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(hooks))


def _terminate(name: str, pid: int, grace: float = 15.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    log(f"stopping {name} (pid {pid})")
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        log(f"{name} ignored SIGTERM for {grace:.0f}s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
