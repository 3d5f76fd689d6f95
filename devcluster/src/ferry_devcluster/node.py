"""A real Kubernetes node on this machine: containerd + runc + CNI bridge, kubelet, kube-proxy,
and kube-router's network-policy controller, so NetworkPolicies are enforced here too.

Found on these machines and encoded here:
* the sandbox may not lower ``oom_score_adj``: containerd's ``restrict_oom_score_adj`` keeps the
  pause container's -998 from failing every pod sandbox with an opaque runc error;
* cgroups are v1 with no systemd: kubelet runs with the cgroupfs driver and ``failCgroupV1:
  false``, without per-QoS cgroups;
* nothing may leave the machine: pods live on our own bridge, and the Service range is routed to
  that bridge so a ClusterIP that kube-proxy has not (yet) translated goes nowhere;
* the CNI bridge plugin ignores NetworkPolicies: kube-router (firewall only) writes them as
  iptables rules and ipsets; traffic between two pods on the bridge reaches those rules only with
  ``bridge-nf-call-iptables``. (kube-network-policies needs nftables' ``queue``, which kernels
  without CONFIG_NFT_QUEUE refuse.)
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from . import images, tools, versions
from .procs import wait_for

if TYPE_CHECKING:
    from .cluster import Cluster, State
    from .pki import CA

NODE_NAME = "ferry-node-0"
BRIDGE = "ferry0"
NODE_IP = "10.88.0.1"
POD_CIDR = "10.88.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
CLUSTER_DNS = "10.96.0.10"
HOST_PACKAGES = {
    "containerd": "containerd",
    "runc": "runc",
    "umoci": "umoci",
    "debootstrap": "debootstrap",
    "ipset": "ipset",  # kube-router's policy controller shells out to it
}
CNI_DIR = Path("/usr/lib/cni")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], text=True, capture_output=True, check=check)


def preflight() -> None:
    """Fail early, naming what is missing, rather than deep inside kubelet's logs."""
    if os.geteuid() != 0:
        raise SystemExit("a real node needs root (containerd, network namespaces, iptables)")
    missing = [pkg for exe, pkg in HOST_PACKAGES.items() if shutil.which(exe) is None]
    if not (CNI_DIR / "bridge").exists():
        missing.append("containernetworking-plugins")
    if missing:
        raise SystemExit(f"a real node needs these Debian packages: apt-get install {' '.join(missing)}")


OWNER_FILE = Path("/run/ferry-real-node")


def claim(sd: Path) -> None:
    """One real node per machine: the bridge, its addresses and iptables are machine-wide."""
    try:
        owner = Path(OWNER_FILE.read_text().strip())
    except FileNotFoundError:
        owner = None
    if owner is not None and owner != sd and (owner / "state.json").exists():
        raise SystemExit(
            f"a real-node cluster of another checkout is running ({owner}); stop it there with "
            "`make stop-cluster NODE=real` first"
        )
    OWNER_FILE.write_text(str(sd))


def owns(sd: Path) -> bool:
    """Whether the machine-wide node is this state directory's (or nobody's)."""
    try:
        return Path(OWNER_FILE.read_text().strip()) == sd
    except FileNotFoundError:
        return True


def release(sd: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if Path(OWNER_FILE.read_text().strip()) == sd:
            OWNER_FILE.unlink()


def prepare_host_network() -> None:
    """The node's bridge with its address, before the API server binds to that address."""
    if _ip("link", "show", BRIDGE, check=False).returncode != 0:
        _ip("link", "add", BRIDGE, "type", "bridge")
    if NODE_IP not in _ip("-4", "addr", "show", BRIDGE).stdout:
        _ip("addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")
    _ip("route", "replace", SERVICE_CIDR, "dev", BRIDGE)
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
    # Without it, pod-to-pod packets on the bridge skip iptables and every NetworkPolicy with them.
    nf_call = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    try:
        nf_call.write_text("1")
    except OSError as exc:
        raise SystemExit(
            f"cannot enable {nf_call} ({exc}): NetworkPolicies would not apply between pods on the "
            "bridge; the kernel needs br_netfilter (CONFIG_BRIDGE_NETFILTER)"
        ) from None


def _containerd_config(sd: Path) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{sd}/containerd/root"
state = "{sd}/containerd/state"
[grpc]
  address = "{sd}/containerd/containerd.sock"
[{cri}]
  sandbox_image = "{images.PAUSE}"
  restrict_oom_score_adj = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{CNI_DIR}"
    conf_dir = "{sd}/cni"
"""


def _cni_config() -> str:
    import json

    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "ferry",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": "CNI_DATA_DIR",
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def start(cluster: Cluster, state: State, ca: CA) -> str:
    """Start containerd, kubelet and kube-proxy; return the node's name."""
    from .cluster import _kubeconfig, log

    sd = cluster.state_dir
    (sd / "containerd").mkdir(parents=True, exist_ok=True)
    (sd / "cni").mkdir(parents=True, exist_ok=True)
    (sd / "containerd.toml").write_text(_containerd_config(sd))
    (sd / "cni" / "10-ferry.conflist").write_text(_cni_config().replace("CNI_DATA_DIR", str(sd / "cni-ipam")))
    sock = sd / "containerd" / "containerd.sock"
    cluster.spawn(state, "containerd", ["containerd", "--config", str(sd / "containerd.toml")])
    wait_for("containerd socket", lambda: cluster.running(state, "containerd") and sock.exists(), 30, 0.1)
    ctr = ["ctr", "--address", str(sock)]
    for ref, archive in images.ensure_images().items():
        images.import_into(ctr, ref, archive)
    # Ferry's own images only when already built for the current sources (building them all
    # takes minutes; `make load-images` does that and imports them into a running node).
    ferry = images.cached_ferry_images()
    images.import_all(ctr, ferry)
    missing = [i.ref for i in images.FERRY_IMAGES if i.ref not in ferry]
    log("images imported into containerd" + (f"; not built yet: {', '.join(missing)}" if missing else ""))

    kubelet_crt, kubelet_key = ca.issue(
        "kubelet-client", f"system:node:{NODE_NAME}", org="system:nodes", client=True
    )
    serving_crt, serving_key = ca.issue("kubelet-serving", NODE_NAME, server_names=(NODE_IP, "127.0.0.1"))
    server = yaml.safe_load((sd / "admin.kubeconfig").read_text())["clusters"][0]["cluster"]["server"]
    kubelet_kc = sd / "kubelet.kubeconfig"
    kubelet_kc.write_text(_kubeconfig(server, ca.cert_path, kubelet_crt, kubelet_key))
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "containerRuntimeEndpoint": f"unix://{sock}",
        "address": NODE_IP,
        "port": state.ports["kubelet"],
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": state.ports["kubelet_healthz"],
        "readOnlyPort": 0,
        "tlsCertFile": str(serving_crt),
        "tlsPrivateKeyFile": str(serving_key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca.cert_path)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [CLUSTER_DNS],
        "clusterDomain": "cluster.local",
        "resolvConf": "/etc/resolv.conf",
        # A shared disk is often fuller than kubelet's defaults tolerate; never evict here.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "serializeImagePulls": False,
        "podCIDR": POD_CIDR,
    }
    (sd / "kubelet.yaml").write_text(yaml.safe_dump(config))
    cluster.spawn(
        state,
        "kubelet",
        [
            str(tools.bin_path("kubelet")),
            f"--config={sd / 'kubelet.yaml'}",
            f"--kubeconfig={kubelet_kc}",
            f"--root-dir={sd / 'kubelet'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            "--node-labels=ferry.dev/node=real",
            "--v=1",
        ],
    )
    proxy_config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(sd / "admin.kubeconfig")},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "bindAddress": NODE_IP,
        "metricsBindAddress": f"127.0.0.1:{state.ports['proxy_metrics']}",
        "healthzBindAddress": f"127.0.0.1:{state.ports['proxy_healthz']}",
        # conntrack sysctls are not ours to change in this sandbox.
        "conntrack": {"maxPerCore": 0, "min": 0},
    }
    (sd / "kube-proxy.yaml").write_text(yaml.safe_dump(proxy_config))
    cluster.spawn(
        state, "kube-proxy", [str(tools.bin_path("kube-proxy")), f"--config={sd / 'kube-proxy.yaml'}"]
    )
    start_dns(cluster, state)
    start_metrics_server(cluster, state, ca)
    return NODE_NAME


# kube-router's chain that every policy decision passes through, made at its start before its first
# full sync: its presence says the controller has hooked into FORWARD, INPUT and OUTPUT.
POLICY_CHAIN = "KUBE-NWPLCY-DEFAULT"


def _chain_exists(chain: str) -> bool:
    return subprocess.run(["iptables", "-t", "filter", "-S", chain], capture_output=True).returncode == 0


def start_network_policies(cluster: Cluster, state: State) -> None:
    """kube-router's network-policy controller alone, once the Node object exists (it reads the
    node's address from it at start and exits when there is none)."""
    from .cluster import log

    t0 = time.monotonic()
    sd = cluster.state_dir
    cluster.spawn(
        state,
        "kube-router",
        [
            str(tools.bin_path("kube-router")),
            f"--kubeconfig={sd / 'admin.kubeconfig'}",
            f"--hostname-override={NODE_NAME}",
            "--run-firewall=true",
            # Routing is the CNI bridge's and Services are kube-proxy's; their controllers are the
            # ones the advisories against this release are about (versions.py).
            "--run-router=false",
            "--run-service-proxy=false",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # No listener at all: no health port (readiness is read from iptables below) and no
            # metrics port (the default), so pods reach nothing new on the node's address.
            "--health-port=0",
        ],
    )
    wait_for(
        "kube-router's network-policy chains",
        lambda: cluster.running(state, "kube-router") and _chain_exists(POLICY_CHAIN),
        60,
        0.2,
    )
    log(f"kube-router {versions.KUBE_ROUTER} enforcing NetworkPolicies after {time.monotonic() - t0:.1f}s")


def _host_service(
    name: str, cluster_ip: str | None, ports: list[dict[str, object]]
) -> list[dict[str, object]]:
    """A kube-system Service backed by a process on the node's address instead of by pods."""
    spec: dict[str, object] = {"ports": [{k: v for k, v in p.items() if k != "targetPort"} for p in ports]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "kube-system", "labels": {"k8s-app": name}},
            "spec": spec,
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-host",
                "namespace": "kube-system",
                "labels": {
                    "kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "localcluster.ferry.dev",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
            "ports": [
                {"name": p["name"], "port": p["targetPort"], "protocol": p.get("protocol", "TCP")}
                for p in ports
            ],
        },
    ]


def start_dns(cluster: Cluster, state: State) -> None:
    """CoreDNS on the node's address answering cluster.local, and nothing else: pods get
    NXDOMAIN for outside names instead of queries leaving the machine."""
    sd = cluster.state_dir
    corefile = f"""cluster.local:53 in-addr.arpa:53 {{
    bind {NODE_IP}
    errors
    kubernetes cluster.local in-addr.arpa {{
        kubeconfig {sd / "admin.kubeconfig"} ferry-local
        pods insecure
    }}
    cache 30
}}
.:53 {{
    bind {NODE_IP}
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""
    (sd / "Corefile").write_text(corefile)
    cluster.spawn(state, "coredns", [str(tools.bin_path("coredns")), "-conf", str(sd / "Corefile")])
    dns_ports = [
        {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "targetPort": 53, "protocol": "TCP"},
    ]
    cluster.kubectl(
        "apply", "-f", "-", input=yaml.safe_dump_all(_host_service("kube-dns", CLUSTER_DNS, dns_ports))
    )


def start_metrics_server(cluster: Cluster, state: State, ca: CA) -> None:
    """metrics-server, so HPAs see real CPU, registered through the aggregation layer."""
    import base64

    sd = cluster.state_dir
    crt, key = ca.issue(
        "metrics-server",
        "metrics-server",
        server_names=(
            NODE_IP,
            "metrics-server.kube-system.svc",
            "metrics-server.kube-system.svc.cluster.local",
        ),
    )
    kc = str(sd / "admin.kubeconfig")
    port = state.ports["metrics_server"]
    cluster.spawn(
        state,
        "metrics-server",
        [
            str(tools.bin_path("metrics-server")),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            f"--bind-address={NODE_IP}",
            f"--secure-port={port}",
            f"--tls-cert-file={crt}",
            f"--tls-private-key-file={key}",
            # The kubelet's serving certificate is ours, but metrics-server dials it by IP.
            "--kubelet-insecure-tls",
            "--kubelet-preferred-address-types=InternalIP",
            "--kubelet-use-node-status-port",
            "--metric-resolution=15s",
        ],
    )
    ports = [{"name": "https", "port": 443, "targetPort": port, "protocol": "TCP"}]
    objs = _host_service("metrics-server", None, ports)
    objs.append(
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {
                "service": {"name": "metrics-server", "namespace": "kube-system", "port": 443},
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "caBundle": base64.b64encode(ca.cert_path.read_bytes()).decode(),
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        }
    )
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))


CGROUP_ROOT = Path("/sys/fs/cgroup")


def _remove_chains(prefixes: tuple[str, ...]) -> None:
    """Drop the iptables chains the node's components made (CNI masquerading, kube-proxy's
    and kubelet's KUBE-*), with the jumps into them from the built-in chains."""
    for table in ("nat", "filter", "mangle"):
        rules = subprocess.run(["iptables-save", "-t", table], text=True, capture_output=True).stdout
        ours = [
            ln[1:].split()[0]
            for ln in rules.splitlines()
            if ln.startswith(":") and ln[1:].startswith(prefixes)
        ]
        for line in rules.splitlines():
            if (
                line.startswith("-A ")
                and line.split()[1] not in ours
                and any(f"-j {c}" in line for c in ours)
            ):
                delete = shlex.split(line.replace("-A", "-D", 1))
                subprocess.run(["iptables", "-t", table, *delete], capture_output=True)
        for chain in ours:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
        for chain in ours:
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)


def _kill_containers(sd: Path) -> None:
    """Containers and their shims outlive containerd; end them through their cgroups."""
    for procs in CGROUP_ROOT.glob("pids/k8s.io/*/cgroup.procs"):
        for pid in procs.read_text().split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if cmd and cmd[0].endswith(b"containerd-shim-runc-v2") and str(sd).encode() in b" ".join(cmd):
                os.kill(int(proc.name), signal.SIGKILL)
    for controller in CGROUP_ROOT.iterdir():
        for group in sorted(controller.glob("k8s.io/**/"), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                group.rmdir()


def _destroy_ipsets(prefixes: tuple[str, ...]) -> None:
    """kube-router's sets (KUBE-SRC-*, KUBE-DST-*), once no rule refers to them any more."""
    if shutil.which("ipset") is None:
        return
    names = subprocess.run(["ipset", "list", "-n"], text=True, capture_output=True).stdout.split()
    for name in names:
        if name.startswith(prefixes):
            subprocess.run(["ipset", "destroy", name], capture_output=True)


def cleanup(sd: Path) -> None:
    """Undo what the node did to the host: containers, mounts, netns, iptables, ipsets, the bridge."""
    _kill_containers(sd)
    kube_proxy = tools.bin_path("kube-proxy")
    if kube_proxy.exists():
        subprocess.run([str(kube_proxy), "--cleanup"], capture_output=True)
    # containerd leaves overlay and shm mounts of its (now dead) containers under its root.
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for m in sorted((m for m in mounts if m.startswith(str(sd))), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    for ns in Path("/var/run/netns").glob("cni-*") if Path("/var/run/netns").exists() else []:
        subprocess.run(["ip", "netns", "delete", ns.name], capture_output=True)
    _remove_chains(("CNI-", "KUBE-"))  # kube-router's are KUBE-ROUTER-*, KUBE-POD-FW-*, KUBE-NWPLCY-*
    _destroy_ipsets(("KUBE-SRC-", "KUBE-DST-"))
    _ip("route", "del", SERVICE_CIDR, "dev", BRIDGE, check=False)
    _ip("link", "del", BRIDGE, check=False)
    release(sd)
