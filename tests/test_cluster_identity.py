"""The cluster's identity, made by `pulumi up` before any node boots, against a real kube-apiserver (built from the
k8s.io/kubernetes module) started as k3s would start it on a server: with the CAs and the service-account key
from that server's stick, and a serving certificate signed by the stick's server CA. The `kubeconfig` output
logs in as system:masters and checks the server; a kubeconfig signed by another CA is refused; the kube-vip and
add-on manifests in the servers' Ignition, and the secret values on their sticks, apply and read back. Under
the real engine, nothing of the identity changes unless a rotation asks for it.

One scenario (see tests/conftest.py), one stack, one API server.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from base import node_layout as L
from harness.certificates import CertKey, issue, new_ca
from harness.kube_apiserver import KubeApiServer, kube_apiserver, kubectl
from harness.processes import write_private
from harness.pulumi_project import PulumiProject
from harness.stack import REPO, stack_settings
from harness.stick import secret_file
from pki.x509 import CertificateSpec, Issuer, certificate, new_key

pytestmark = [pytest.mark.engine, pytest.mark.scenario]
VIP = "192.168.50.250"
SECRET_VALUE = "addon-secret-0a1b2c3d"
CHART = {
    "name": "podinfo",
    "repo": "https://stefanprodan.github.io/podinfo",
    "chart": "podinfo",
    "version": "6.7.1",
    "namespace": "apps",
    "values": {"replicaCount": 2},
}
MANIFEST = {
    "name": "team",
    "content": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n---\n"
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: welcome\n  namespace: team\ndata:\n  hello: world\n",
}


@dataclass
class World:
    project: PulumiProject
    api: KubeApiServer
    kubeconfig: Path
    workdir: Path


def settings() -> dict[str, Any]:
    doc = stack_settings("dev")
    doc["apiServerAddress"] = VIP
    doc["kubeVip"] = {"interface": "eno1"}
    doc["addons"] = {"charts": [CHART], "manifests": [MANIFEST]}
    return doc


def server_file(project: PulumiProject, name: str) -> str:
    content = secret_file(Path(project.stack_output("nodes")["node0"]["stickImage"]), name)
    assert content is not None, name
    return content


def first(chain: str) -> str:
    end = "-----END CERTIFICATE-----\n"
    return chain.split(end, 1)[0] + end


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("identity")
    project = PulumiProject(workdir / "ephemeros", "identity")
    project.init(settings())
    project.run(
        "config", "set", "--secret", "--path", "addonValues.podinfo", stdin=f"ui:\n  password: {SECRET_VALUE}\n"
    )
    project.run("up", "--yes")
    kubeconfig = workdir / "kubeconfig"
    output = project.run("stack", "output", "kubeconfig", "--json", "--show-secrets", record=False).stdout
    write_private(kubeconfig, json.loads(output).encode())

    # What k3s does on a server: its serving certificate, signed by the server CA from the stick, names the VIP.
    server_ca, server_ca_key = server_file(project, "pki-server-ca.crt"), server_file(project, "pki-server-ca.key")
    serving_key = new_key("ec-p256")
    serving = certificate(
        CertificateSpec("k3s", usages=("server",), ip_addresses=("127.0.0.1", VIP)),
        serving_key,
        Issuer(first(server_ca), server_ca_key),
    )
    client_ca = server_file(project, "pki-client-ca.crt")
    probe = issue(CertKey(first(client_ca).encode(), server_file(project, "pki-client-ca.key").encode()), "probe")
    with kube_apiserver(
        client_ca=client_ca.encode(),
        request_header_ca=server_file(project, "pki-request-header-ca.crt").encode(),
        service_account_key=server_file(project, f"pki-{L.K3S_SERVICE_KEY}").encode(),
        serving_cert=(serving + server_ca).encode(),
        serving_key=serving_key.encode(),
        serving_ca=server_ca.encode(),
        probe_client=probe,
    ) as api:
        yield World(project, api, kubeconfig, workdir)
    project.run("destroy", "--yes", check=False)


def as_admin(world: World, *args: str, tls_name: str = VIP, input: str | None = None) -> Any:
    """kubectl with the kubeconfig output as it is, at the test API server's port (the VIP is not here)."""
    return kubectl(world.kubeconfig, f"--server={world.api.url}", f"--tls-server-name={tls_name}", *args, input=input)


def test_the_kubeconfig_output_points_at_the_vip_and_logs_in_as_system_masters(world: World) -> None:
    config = yaml.safe_load(world.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == f"https://{VIP}:6443"
    whoami = as_admin(world, "auth", "whoami", "-o", "json")
    assert whoami.returncode == 0, whoami.stderr
    user = json.loads(whoami.stdout)["status"]["userInfo"]
    assert user["username"] == "system:admin"
    assert "system:masters" in user["groups"]


def test_the_kubeconfig_checks_the_server(world: World) -> None:
    wrong_name = as_admin(world, "get", "--raw=/version", tls_name="someone-else.example")
    assert wrong_name.returncode != 0
    assert "x509" in wrong_name.stderr  # the serving certificate is checked against the cluster's server CA


def test_a_kubeconfig_signed_by_another_ca_is_refused(world: World) -> None:
    other = issue(new_ca("another CA"), "system:admin", organizations=("system:masters",))
    config = yaml.safe_load(world.kubeconfig.read_text())
    user = config["users"][0]["user"]
    user["client-certificate-data"] = base64.b64encode(other.cert).decode()
    user["client-key-data"] = base64.b64encode(other.key).decode()
    forged = world.workdir / "forged-kubeconfig"
    write_private(forged, yaml.safe_dump(config).encode())
    refused = kubectl(forged, f"--server={world.api.url}", f"--tls-server-name={VIP}", "get", "namespaces")
    assert refused.returncode != 0
    assert "Unauthorized" in refused.stderr or "provide credentials" in refused.stderr


def manifests(world: World) -> dict[str, str]:
    """The manifests in node0's public Ignition (k3s's auto-deploy directory), by path."""
    ignition = json.loads((world.project.build_dir / "ignition/node0.ign").read_text())
    return {
        f["path"]: unquote(f["contents"]["source"].removeprefix("data:,"))
        for f in ignition["storage"]["files"]
        if f["path"].startswith(L.K3S_MANIFESTS_DIR)
    }


def test_the_servers_manifests_and_secret_values_apply_and_read_back(world: World) -> None:
    crds = REPO / ".tools/testtools/crds"
    assert as_admin(world, "apply", "--server-side", "-f", str(crds)).returncode == 0  # what k3s ships
    assert as_admin(world, "wait", "--for=condition=Established", "crd/helmcharts.helm.cattle.io").returncode == 0
    found = manifests(world)
    assert sorted(found) == sorted(
        [
            L.KUBE_VIP_MANIFEST,
            f"{L.K3S_MANIFESTS_DIR}/ephemeros-addon-podinfo.yaml",
            f"{L.K3S_MANIFESTS_DIR}/ephemeros-addon-team.yaml",
        ]
    )
    secret_values = server_file(world.project, L.addon_values_file("podinfo"))  # on the stick, not in the Ignition
    assert SECRET_VALUE not in "".join(found.values())
    for content in [*found.values(), secret_values]:
        applied = as_admin(world, "apply", "--server-side", "--field-manager=k3s", "-f", "-", input=content)
        assert applied.returncode == 0, applied.stderr

    daemonset = json.loads(as_admin(world, "-n", "kube-system", "get", "daemonset", "kube-vip", "-o", "json").stdout)
    container = daemonset["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["address"], env["vip_interface"], env["vip_arp"], env["vip_leaderelection"]) == (
        VIP,
        "eno1",
        "true",
        "true",
    )
    assert daemonset["spec"]["template"]["spec"]["hostNetwork"] is True
    chart = json.loads(as_admin(world, "-n", "kube-system", "get", "helmchart", "podinfo", "-o", "json").stdout)
    assert (chart["spec"]["chart"], chart["spec"]["version"], chart["spec"]["targetNamespace"]) == (
        "podinfo",
        "6.7.1",
        "apps",
    )
    assert yaml.safe_load(chart["spec"]["valuesContent"]) == {"replicaCount": 2}
    assert chart["spec"]["valuesSecrets"] == [{"name": L.addon_values_secret("podinfo"), "keys": ["values.yaml"]}]
    held = json.loads(
        as_admin(world, "-n", "kube-system", "get", "secret", L.addon_values_secret("podinfo"), "-o", "json").stdout
    )
    assert SECRET_VALUE in base64.b64decode(held["data"]["values.yaml"]).decode()
    welcome = as_admin(world, "-n", "team", "get", "configmap", "welcome", "-o", "jsonpath={.data.hello}")
    assert welcome.stdout == "world"


def identity(world: World) -> dict[str, str]:
    """sha256 of each PKI file on node0's stick, and of the kubeconfig output."""
    found = {name: hashlib.sha256(server_file(world.project, name).encode()).hexdigest() for name in L.pki_files()}
    kubeconfig = world.project.run("stack", "output", "kubeconfig", "--show-secrets", record=False).stdout
    return found | {"kubeconfig": hashlib.sha256(kubeconfig.encode()).hexdigest()}


def test_the_identity_stays_the_same_across_ups(world: World) -> None:
    before = identity(world)
    world.project.run("up", "--yes")
    assert identity(world) == before  # no new CA, no new kubeconfig certificate, on a no-change up
    world.project.run("config", "set", "--path", 'nodes[0].labels["ephemeros.io/rack"]', "a")
    world.project.run("config", "set", "--path", "rotate.agentToken", "1")
    world.project.run("up", "--yes")
    assert identity(world) == before  # the same files, byte for byte: k3s would refuse changed ones


def test_rotations_change_only_what_they_name(world: World) -> None:
    before = identity(world)
    world.project.run("config", "set", "--path", "rotate.adminKubeconfig", "1")
    world.project.run("up", "--yes")
    after = identity(world)
    assert after["kubeconfig"] != before["kubeconfig"]
    assert {k: v for k, v in after.items() if k != "kubeconfig"} == {
        k: v for k, v in before.items() if k != "kubeconfig"
    }

    world.project.run("config", "set", "--path", "rotate.clusterCa", "1")
    world.project.run("up", "--yes")
    rotated = identity(world)
    assert all(rotated[name] != after[name] for name in L.pki_files())
