"""Coordinated reboots, on the cluster's side, against a real kube-apiserver (built from k8s.io/kubernetes) and the
real kubectl: kured's objects from the servers' Ignition apply server-side as k3s applies its manifests; kured's
account may take and release its lock on its own DaemonSet and drain nodes, and nothing more; the lock survives a
server re-applying the manifest at its start; and a server's sentinel command lets it reboot only while every
other server (a Node k3s labels control-plane) is Ready, the servers found at run time."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from base import node_layout as L
from harness.certificates import issue, new_ca, new_private_key
from harness.kube_apiserver import KubeApiServer, kube_apiserver, kubectl, write_kubeconfig
from harness.processes import built_tool, free_port
from harness.stack import base_settings, node_named, to_raw
from ignition.render import node_config
from settings import Settings, load_settings
from settings.credentials import Credentials
from settings.node_plan import node_plan

pytestmark = pytest.mark.slow

RBAC_SETTLE_TIMEOUT = 60  # seconds
KURED = "system:serviceaccount:kube-system:kured"
LOCK = "weave.works/kured-node-lock"
SERVERS = ("s0", "s1", "s2")


def stack(servers: tuple[str, ...] = SERVERS, **updates: Any) -> Settings:
    doc = base_settings()
    doc["nodes"] = [
        *({"hostname": name, "role": "server"} for name in servers),
        {"hostname": "a0", "role": "agent"},
    ]
    doc["datastore"] = {"type": "etcd"}
    doc["updates"] = {
        "window": {"days": ["sat", "sun"], "start": "02:00", "end": "05:30", "timeZone": "Europe/Berlin"},
        **updates,
    }
    return load_settings(to_raw(doc), set()).settings


def node_file(settings: Settings, hostname: str, path: str) -> str:
    node = node_named(settings, hostname)
    sha = "0" * 64  # the etcd rejoin tool's pin: any, for these files
    config = node_config(settings, node_plan(settings, node, Credentials()), etcd_rejoin_sha256=sha)
    return config["files"][path]["text"]


@dataclass
class Cluster:
    api: KubeApiServer
    admin: Path

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = kubectl(self.admin, *args, input=input)
        assert done.returncode == 0 or not check, done.stderr
        return done

    def as_kured(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return kubectl(self.admin, f"--as={KURED}", *args, input=input)

    def apply_as_k3s(self, manifest: str) -> None:
        """What a server's k3s does with a file of its auto-deploy manifests, at every start."""
        self.run("apply", "--server-side", "--force-conflicts", "--field-manager=k3s", "-f", "-", input=manifest)

    def daemonset(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.run("-n", "kube-system", "get", "ds", "kured", "-o", "json").stdout)
        return found

    def set_ready(self, node: str, status: str) -> None:
        patch = {"status": {"conditions": [{"type": "Ready", "status": status, "reason": "Test"}]}}
        self.run("patch", "node", node, "--subresource=status", "--type=merge", "-p", json.dumps(patch))

    def add_node(self, name: str, server: bool) -> None:
        """A Node as k3s registers it: a server's labelled control-plane (k3s's pkg/server sets the label)."""
        labels = {L.CONTROL_PLANE_LABEL: "true"} if server else {}
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}
        self.run("create", "-f", "-", input=json.dumps(node))
        self.set_ready(name, "True")

    def set_server(self, node: str, server: bool) -> None:
        label = f"{L.CONTROL_PLANE_LABEL}=true" if server else f"{L.CONTROL_PLANE_LABEL}-"
        self.run("label", "node", node, "--overwrite", label)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root, client_ca = new_ca("kube-root"), new_ca("client-ca")
    serving = issue(root, "kube-apiserver", hosts=["127.0.0.1", "localhost"], server=True, client=False)
    with kube_apiserver(
        client_ca=client_ca.cert,
        request_header_ca=new_ca("request-header-ca").cert,
        service_account_key=new_private_key(),
        serving_cert=serving.cert,
        serving_key=serving.key,
        serving_ca=root.cert,
        probe_client=issue(client_ca, "probe"),
    ) as api:
        admin = issue(client_ca, "admin", organizations=["system:masters"])
        path = write_kubeconfig(tmp_path_factory.mktemp("kured") / "admin", api.url, root.cert, admin.cert, admin.key)
        cluster = Cluster(api, path)
        for name in SERVERS:
            cluster.add_node(name, server=True)
        cluster.add_node("a0", server=False)
        yield cluster


def test_kured_applies_server_side_as_configured(cluster: Cluster) -> None:
    settings = stack(kured={"image": "mirror.lan:5000/kubereboot/kured:1.20.0", "drainTimeout": 600})
    manifest = node_file(settings, "s1", L.KURED_MANIFEST)
    assert manifest == node_file(settings, "s0", L.KURED_MANIFEST)  # every server carries the same objects
    cluster.apply_as_k3s(manifest)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(manifest)}
    assert kinds == {(k, "kured") for k in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                                            "RoleBinding", "DaemonSet")}  # fmt: skip
    for kind, name in kinds:
        namespace = [] if kind.startswith("Cluster") else ["-n", "kube-system"]
        cluster.run(*namespace, "get", kind.lower(), name)

    pod = cluster.daemonset()["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    assert pod["hostNetwork"] is True  # a server's sentinel command reaches its API server on 127.0.0.1
    assert pod["tolerations"] == [{"operator": "Exists"}]  # tainted nodes reboot too
    (container,) = pod["containers"]
    assert container["image"] == "mirror.lan:5000/kubereboot/kured:1.20.0"
    assert container["securityContext"]["privileged"] is True
    args = container["command"]
    assert args[0] == "/usr/bin/kured"
    for arg in (
        "--ds-name=kured",
        "--ds-namespace=kube-system",
        f"--reboot-sentinel-command={L.REBOOT_REQUIRED_SCRIPT}",
        "--concurrency=1",
        "--lock-ttl=0",
        "--lock-release-delay=300s",
        "--drain-timeout=600s",
        "--reboot-days=sat,sun",
        "--start-time=02:00",
        "--end-time=05:30",
        "--time-zone=Europe/Berlin",
        "--period=900s",
    ):
        assert arg in args


def test_kureds_account_may_lock_and_drain_and_nothing_more(cluster: Cluster) -> None:
    def can(*args: str) -> bool:
        return cluster.as_kured("auth", "can-i", *args).stdout.strip() == "yes"

    # The API server's authorizer learns of new roles and bindings from its watch a moment after they are made.
    deadline = time.monotonic() + RBAC_SETTLE_TIMEOUT
    while not (can("update", "daemonsets.apps/kured", "-n", "kube-system") and can("patch", "nodes/s0")):
        assert time.monotonic() < deadline, f"kured's roles not in force {RBAC_SETTLE_TIMEOUT} s after they were made"
        time.sleep(0.5)
    assert can("update", "daemonsets.apps/kured", "-n", "kube-system")  # its lock
    assert not can("update", "daemonsets.apps/kube-vip", "-n", "kube-system")
    assert not can("delete", "daemonsets.apps/kured", "-n", "kube-system")
    assert can("patch", "nodes/s0")  # cordon, uncordon
    assert not can("delete", "nodes/s0")
    assert can("create", "pods", "--subresource=eviction", "-n", "default")  # drain
    assert can("delete", "pods", "-n", "default")
    assert not can("create", "pods", "-n", "default")
    assert not can("get", "secrets", "-n", "kube-system")


def test_the_lock_is_kureds_to_take_and_survives_a_server_reapplying_the_manifest(cluster: Cluster) -> None:
    settings = stack()
    manifest = node_file(settings, "s0", L.KURED_MANIFEST)
    cluster.apply_as_k3s(manifest)

    # What kured does to take the lock (daemonsetlock.Acquire): an update of its DaemonSet with the annotation.
    daemonset = cluster.daemonset()
    held = {"nodeID": "s1", "metadata": {"unschedulable": False}, "created": "2026-01-01T00:00:00Z", "TTL": 0}
    daemonset["metadata"].setdefault("annotations", {})[LOCK] = json.dumps(held)
    taken = cluster.as_kured("replace", "-f", "-", input=json.dumps(daemonset))
    assert taken.returncode == 0, taken.stderr

    # s1 reboots; a server's k3s applies its manifests at start, a changed one too (here, a new image).
    changed = manifest.replace("ghcr.io/kubereboot/kured:1.20.0", "ghcr.io/kubereboot/kured:1.20.1")
    assert changed != manifest
    cluster.apply_as_k3s(changed)
    after = cluster.daemonset()
    assert json.loads(after["metadata"]["annotations"][LOCK])["nodeID"] == "s1"
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/kubereboot/kured:1.20.1"

    # kured on s1, back: release (daemonsetlock.Release deletes the annotation, again by an update).
    del after["metadata"]["annotations"][LOCK]
    released = cluster.as_kured("replace", "-f", "-", input=json.dumps(after))
    assert released.returncode == 0, released.stderr
    assert LOCK not in cluster.daemonset()["metadata"].get("annotations", {})


@pytest.fixture
def host(cluster: Cluster, tmp_path: Path) -> Path:
    """A server's root as the sentinel command sees it: the k3s kubectl, and k3s's admin kubeconfig."""
    root = tmp_path / "root"
    (root / L.OPT_BIN.lstrip("/")).mkdir(parents=True)
    (root / L.OPT_BIN.lstrip("/") / "kubectl").symlink_to(built_tool("kubectl"))
    kubeconfig = root / L.K3S_KUBECONFIG.lstrip("/")
    kubeconfig.parent.mkdir(parents=True)
    kubeconfig.write_bytes(cluster.admin.read_bytes())
    return root


def sentinel_command(settings: Settings, hostname: str, root: Path) -> subprocess.CompletedProcess[str]:
    script = root / "reboot-required"
    script.write_text(node_file(settings, hostname, L.REBOOT_REQUIRED_SCRIPT))
    env = {**os.environ, "EPHEMEROS_ROOT": str(root)}
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, check=False, timeout=120)


def ask_for_reboot(root: Path) -> None:
    sentinel = root / L.REBOOT_SENTINEL.lstrip("/")
    sentinel.parent.mkdir(parents=True, exist_ok=True)
    sentinel.write_text("ephemeros-update-check: config a booted, b served\n")


def test_a_server_reboots_only_while_every_other_server_is_ready(cluster: Cluster, host: Path) -> None:
    settings = stack()
    assert sentinel_command(settings, "s0", host).returncode == 1  # nothing asked
    ask_for_reboot(host)
    done = sentinel_command(settings, "s0", host)
    assert done.returncode == 0, done.stdout + done.stderr

    cluster.set_ready("s2", "False")  # down for another reason
    try:
        done = sentinel_command(settings, "s0", host)
        assert done.returncode == 1
        assert done.stdout == "reboot held back: server s2 is not Ready (False)\n"
        assert sentinel_command(settings, "s2", host).returncode == 0  # s2 itself may go: the others are Ready
    finally:
        cluster.set_ready("s2", "True")
    assert sentinel_command(settings, "s0", host).returncode == 0


def test_a_server_without_a_node_holds_nothing_back(cluster: Cluster, host: Path) -> None:
    """A server in the settings that has not joined yet, or that was removed with kubectl delete node."""
    ask_for_reboot(host)
    cluster.run("delete", "node", "s1")
    try:
        done = sentinel_command(stack(), "s0", host)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout == ""
    finally:
        cluster.add_node("s1", server=True)


def test_a_server_that_cannot_ask_the_api_does_not_reboot(cluster: Cluster, host: Path) -> None:
    ask_for_reboot(host)
    kubeconfig = host / L.K3S_KUBECONFIG.lstrip("/")
    config = yaml.safe_load(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    kubeconfig.write_text(yaml.safe_dump(config))
    done = sentinel_command(stack(), "s0", host)
    assert done.returncode == 1
    assert done.stdout.startswith("reboot held back: the servers could not be listed (")
    assert "connection refused" in done.stdout


def test_an_agent_reboots_when_asked(tmp_path: Path) -> None:
    root = tmp_path / "root"  # no kubectl, no kubeconfig: an agent asks no API
    root.mkdir()
    settings = stack()
    assert sentinel_command(settings, "a0", root).returncode == 1
    ask_for_reboot(root)
    assert sentinel_command(settings, "a0", root).returncode == 0


def test_the_servers_are_found_at_run_time_not_in_the_config(cluster: Cluster, host: Path) -> None:
    """Adding or removing a server changes no other server's sentinel command: a server the settings do not name yet
    holds a reboot back as soon as its Node is there, and a Node that is no server (an agent's) holds nothing back."""
    script = node_file(stack(), "s0", L.REBOOT_REQUIRED_SCRIPT)
    for servers in (("s0", "s1", "s2", "s3", "s4"), ("s0", "s3", "s4")):  # embedded etcd: an odd number
        assert node_file(stack(servers), "s0", L.REBOOT_REQUIRED_SCRIPT) == script
    ask_for_reboot(host)
    cluster.add_node("s3", server=True)
    try:
        cluster.set_ready("s3", "False")
        done = sentinel_command(stack(), "s0", host)
        assert (done.returncode, done.stdout) == (1, "reboot held back: server s3 is not Ready (False)\n")
    finally:
        cluster.run("delete", "node", "s3")
    cluster.set_ready("a0", "False")
    try:
        done = sentinel_command(stack(), "s0", host)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        cluster.set_ready("a0", "True")


def test_a_lone_server_reboots_when_asked(cluster: Cluster, host: Path) -> None:
    """The only server in the API, not Ready itself (its own readiness holds nothing back): the others here made
    agents, and not Ready."""
    settings = load_settings(to_raw({**base_settings(), "updates": {}}), set()).settings
    ask_for_reboot(host)
    cluster.add_node("node0", server=True)
    cluster.set_ready("node0", "False")
    for other in SERVERS:
        cluster.set_server(other, False)
        cluster.set_ready(other, "False")
    try:
        done = sentinel_command(settings, "node0", host)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        cluster.run("delete", "node", "node0")
        for other in SERVERS:
            cluster.set_server(other, True)
            cluster.set_ready(other, "True")
