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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import node, pki, tools, versions
from .paths import local_dir
from .procs import free_port, port_open, wait_for

SERVICE_CIDR = "10.96.0.0/16"
KWOK_NODE = "kwok-node-0"
KSERVE_NAMESPACE = "kserve"


def log(msg: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {msg}", flush=True)


NODE_KINDS = ("kwok", "real")


def root_for(node: str) -> Path:
    return local_dir() if node == "kwok" else local_dir() / "e2e"


_NODE = os.environ.get("FERRY_NODE", "kwok")


def select(node: str) -> None:
    """Point this module at one flavour's cluster (the CLI's --node)."""
    global _NODE
    if node not in NODE_KINDS:
        raise ValueError(f"unknown node kind {node!r}; expected one of {NODE_KINDS}")
    _NODE = node


def node_kind() -> str:
    return _NODE


def state_dir() -> Path:
    return root_for(_NODE) / "cluster"


def kubeconfig_path() -> Path:
    return root_for(_NODE) / "kubeconfig"


@dataclass
class State:
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def path() -> Path:
        return state_dir() / "state.json"

    @classmethod
    def load(cls) -> State | None:
        try:
            return cls(**json.loads(cls.path().read_text()))
        except FileNotFoundError:
            return None

    def save(self) -> None:
        self.path().write_text(json.dumps(asdict(self), indent=2))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def kubectl(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [str(tools.bin_path("kubectl")), f"--kubeconfig={state_dir() / 'admin.kubeconfig'}", *args]
    proc = subprocess.run(cmd, input=input, text=True, capture_output=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def _spawn(state: State, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    logs = state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # outlives `make cluster-up`; stopped by `down` via its group
        )
    state.pids[name] = proc.pid
    state.save()


def _running(state: State, name: str) -> bool:
    """True while the process lives; raises with its log tail once it has died."""
    pid = state.pids[name]
    if not _alive(pid):
        tail = (state_dir() / "logs" / f"{name}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{name} exited during start-up; last log lines:\n{tail}")
    return True


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


def is_up() -> bool:
    state = State.load()
    if state is None or not state.pids or not all(_alive(p) for p in state.pids.values()):
        return False
    return kubectl("get", "--raw=/readyz", check=False).returncode == 0 and kubeconfig_path().exists()


def up() -> float:
    """Bring the cluster up (or confirm it is); return seconds taken.

    A start that fails is undone and tried once more: on a busy machine a component can lose a
    race for its port or miss a deadline, and a second start from scratch is cheap next to
    failing every suite that needs the cluster.
    """
    t0 = time.monotonic()
    if is_up():
        log(f"already up; kubeconfig: {kubeconfig_path()}")
        return time.monotonic() - t0
    try:
        return _start(t0)
    except (RuntimeError, TimeoutError) as exc:
        log(f"start failed ({str(exc)[:400]}); stopping what started and trying once more")
        down()
        return _start(t0)


def _start(t0: float) -> float:
    if State.load() is not None:
        log("found a partly running cluster; stopping it first")
        down()
    if not all(t.built() for t in tools.ALL):
        tools.ensure_tools()
    sd = state_dir()
    if _NODE == "real":
        node.preflight()
        node.claim(sd)  # before any state exists, so a refused start leaves nothing to undo
    sd.mkdir(parents=True, exist_ok=True)
    state = State(
        ports={
            n: free_port()
            for n in (
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
        }
    )
    state.save()
    phases: dict[str, float] = {}

    def phase(name: str, started: float) -> None:
        phases[name] = time.monotonic() - started
        log(f"{name} ready in {phases[name]:.1f}s")

    if _NODE == "real":
        node.prepare_host_network()
    # With a real node, pods reach the API server through the kubernetes Service, so it must
    # listen on the node's bridge address rather than loopback.
    api_ip = node.NODE_IP if _NODE == "real" else "127.0.0.1"
    pkidir = sd / "pki"
    ca = pki.CA(pkidir)
    api_crt, api_key = ca.issue(
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
    adm_crt, adm_key = ca.issue("admin", "ferry-admin", org="system:masters", client=True)
    # The aggregation layer (metrics.k8s.io) authenticates the API server to extension servers.
    proxy_crt, proxy_key = ca.issue("front-proxy-client", "front-proxy-client", client=True)
    hook_crt, hook_key = ca.issue("kserve-webhook", "kserve-webhook", server_names=("127.0.0.1", "localhost"))
    sa_key, sa_pub = pki.service_account_keys(pkidir)
    server = f"https://{api_ip}:{state.ports['apiserver']}"
    admin_kc = sd / "admin.kubeconfig"
    admin_kc.write_text(_kubeconfig(server, ca.cert_path, adm_crt, adm_key))
    admin_kc.chmod(0o600)

    t = time.monotonic()
    log(f"starting etcd {versions.ETCD}")
    etcd_url = f"http://127.0.0.1:{state.ports['etcd']}"
    _spawn(
        state,
        "etcd",
        [
            str(tools.bin_path("etcd")),
            "--data-dir",
            str(sd / "etcd"),
            "--name",
            "ferry",
            "--listen-client-urls",
            etcd_url,
            "--advertise-client-urls",
            etcd_url,
            "--listen-peer-urls",
            f"http://127.0.0.1:{state.ports['etcd_peer']}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{state.ports['etcd_peer']}",
            "--initial-cluster",
            f"ferry=http://127.0.0.1:{state.ports['etcd_peer']}",
            "--unsafe-no-fsync",
            "--quota-backend-bytes",
            str(4 << 30),
            "--log-level",
            "warn",
        ],
    )
    wait_for("etcd", lambda: _running(state, "etcd") and port_open(state.ports["etcd"]), 30)
    phase("etcd", t)

    t = time.monotonic()
    log(f"starting kube-apiserver {versions.KUBERNETES}")
    _spawn(
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
            f"--client-ca-file={ca.cert_path}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            # Priority-and-fairness costs CPU that a two-core machine would rather spend on tests.
            "--enable-priority-and-fairness=false",
            f"--requestheader-client-ca-file={ca.cert_path}",
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
            f"--kubelet-certificate-authority={ca.cert_path}",
            "--profiling=false",
            "--v=1",
        ],
    )
    wait_for(
        "kube-apiserver /readyz",
        lambda: (
            _running(state, "kube-apiserver") and kubectl("get", "--raw=/readyz", check=False).returncode == 0
        ),
        90,
        0.3,
    )
    phase("kube-apiserver", t)

    t = time.monotonic()
    kc = str(admin_kc)
    _spawn(
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
            f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={ca.cert_path}",
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
    _spawn(
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
    if _NODE == "kwok":
        start_kwok(state, kc)
        node_name = KWOK_NODE
    else:
        node_name = node.start(state, ca)
    wait_for(
        f"node {node_name} Ready",
        lambda: (
            all(_running(state, n) for n in state.pids)
            and kubectl("get", "node", node_name, "-o", READY, check=False).stdout == "True"
        ),
        90,
        0.3,
    )
    wait_for(
        "default ServiceAccount",
        lambda: kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0,
        60,
        0.3,
    )
    phase("controllers + node", t)

    t = time.monotonic()
    start_kserve(state, ca.cert_path, hook_crt, hook_key)
    phase(f"kserve {versions.KSERVE}", t)

    kubeconfig_path().parent.mkdir(parents=True, exist_ok=True)
    tmp = kubeconfig_path().with_suffix(".tmp")
    tmp.write_text(admin_kc.read_text())
    tmp.chmod(0o600)
    tmp.replace(kubeconfig_path())  # written last: its presence means "ready"
    total = time.monotonic() - t0
    log(f"cluster up in {total:.1f}s; export KUBECONFIG={kubeconfig_path()}")
    return total


READY = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"


def start_kwok(state: State, kubeconfig: str) -> None:
    kwok_src = tools.kwok_dir() / "kustomize" / "stage"
    stages = [
        kwok_src / "node" / "fast" / "node-initialize.yaml",
        kwok_src / "node" / "heartbeat-with-lease" / "node-heartbeat-with-lease.yaml",
        *sorted((kwok_src / "pod" / "fast").glob("pod-*.yaml")),
    ]
    _spawn(
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
    kubectl("apply", "-f", "-", input=yaml.safe_dump(fake_node(KWOK_NODE)))


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


def start_kserve(state: State, ca: Path, crt: Path, key: Path) -> None:
    t0 = time.monotonic()
    src = tools.kserve_dir() / "config"
    log("applying KServe CRDs (server-side: the InferenceService CRD is ~1 MB)")
    crds = [p for p in sorted((src / "crd" / "full").rglob("serving.kserve.io_*.yaml"))]
    kubectl("apply", "--server-side", "--force-conflicts", *[f"-f={c}" for c in crds])
    log(f"KServe CRDs applied in {time.monotonic() - t0:.1f}s")
    names = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in crds]
    established = "jsonpath={.status.conditions[?(@.type=='Established')].status}"

    def all_established() -> bool:
        return all(kubectl("get", "crd", n, "-o", established, check=False).stdout == "True" for n in names)

    # Polled rather than `kubectl wait`, which errors out on a CRD whose status is still empty.
    wait_for("KServe CRDs Established", all_established, 60, 0.2)
    log(f"KServe CRDs established in {time.monotonic() - t0:.1f}s")
    kubectl("create", "namespace", KSERVE_NAMESPACE, check=False)
    kubectl(
        "apply", "-f", "-", input=yaml.safe_dump(_kserve_config(src / "configmap" / "inferenceservice.yaml"))
    )

    # controller-runtime reads its webhook certificate from $TMPDIR/k8s-webhook-server/serving-certs.
    tmpdir = state_dir() / "kserve-tmp"
    certdir = tmpdir / "k8s-webhook-server" / "serving-certs"
    certdir.mkdir(parents=True, exist_ok=True)
    (certdir / "tls.crt").write_bytes(crt.read_bytes())
    (certdir / "tls.key").write_bytes(key.read_bytes())
    _spawn(
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
            "KUBECONFIG": str(state_dir() / "admin.kubeconfig"),
            "POD_NAMESPACE": KSERVE_NAMESPACE,
            "TMPDIR": str(tmpdir),
        },
    )

    def webhook_serving() -> bool:
        _running(state, "kserve-controller")
        return port_open(state.ports["kserve_webhook"])

    wait_for("KServe webhook server", webhook_serving, 90, 0.3)
    log(f"KServe controller serving webhooks after {time.monotonic() - t0:.1f}s")
    bundle = base64.b64encode(ca.read_bytes()).decode()
    hooks = _webhook_configs(src / "webhook" / "manifests.yaml", state.ports["kserve_webhook"], bundle)
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(hooks))


def _terminate(name: str, pid: int, grace: float = 15.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    log(f"stopping {name} (pid {pid})")
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        log(f"{name} ignored SIGTERM for {grace:.0f}s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def down() -> None:
    state = State.load()
    if state is not None:
        # Reverse start order, one at a time: clients go while the API server still answers, and
        # etcd outlives the API server, which otherwise hangs in its graceful shutdown.
        for name, pid in reversed(list(state.pids.items())):
            _terminate(name, pid)
    if _NODE == "real" and node.owns(state_dir()):
        node.cleanup(state_dir())
    shutil.rmtree(state_dir(), ignore_errors=True)
    kubeconfig_path().unlink(missing_ok=True)
    log("cluster down; state removed")
