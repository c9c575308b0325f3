"""The resource graph, with Pulumi's mocks: which resources, under which parents, which outputs are secret."""

from __future__ import annotations

import importlib.metadata
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest

from base.build_layout import BuildDir
from bootmedia.bootloader import check_bootloader
from components.cluster import Cluster, ClusterArgs
from components.datastore import Datastore, DatastoreArgs
from harness.pulumi_project import SECRET_MARKER, SECRET_SIG
from harness.stack import REPO, SECRET_VALUES, full_settings, secret_keys, stack_settings, to_raw
from ignition.render import to_ignition, to_json
from settings import load_settings
from stack.preflight import KUBERNETES_PLUGIN, OPERATION, PreflightError, check_machine
from tests.mocks import RESERVED_ADDRESS, Recorder, mock_test, unwrapped


def make_cluster() -> Cluster:
    doc, secret = full_settings()
    loaded = load_settings(to_raw(doc), secret_keys(secret))
    boot_files = check_bootloader(loaded.settings.bootloader, REPO)
    return Cluster("lab", ClusterArgs(loaded.settings, loaded.credentials, boot_files, BuildDir(Path("build/test"))))


@mock_test
def test_one_node_component_per_node_under_the_cluster(recorder: Recorder) -> pulumi.Output[Any]:
    cluster = make_cluster()

    def check(values: list[str]) -> None:
        urns = values[: len(cluster.nodes)]
        hostnames = [n["hostname"] for n in full_settings()[0]["nodes"]]
        assert sorted(cluster.nodes) == sorted(hostnames)
        assert len(recorder.of_type("ephemeros:index:Cluster")) == 1
        assert len(recorder.of_type("ephemeros:index:ClusterSecrets")) == 1
        assert len(recorder.of_type("ephemeros:index:Node")) == len(hostnames)
        assert len(recorder.of_type(":IgnitionFile")) == len(hostnames)
        assert len(recorder.of_type(":StickImage")) == len(hostnames)
        assert recorder.of_type(":StickWriter") == []  # no node names a device to write
        assert len(recorder.of_type(":RandomSecret")) == 2 + len(hostnames)
        for urn in urns:  # a mock URN's type part lists the parents' types
            assert "ephemeros:index:Cluster$ephemeros:index:Node::" in urn

    nodes = cluster.nodes.values()
    outputs = [*(n.urn for n in nodes), *(n.ignition_file for n in nodes), *(n.stick_image for n in nodes)]
    return pulumi.Output.all(*outputs).apply(check)


@mock_test
def test_secrets_live_under_cluster_secrets(recorder: Recorder) -> pulumi.Output[Any]:
    cluster = make_cluster()
    secrets = cluster.secrets

    def check(values: list[str]) -> None:
        registered = recorder.of_type(":RandomSecret")
        assert sorted(name for _, name, _ in registered) == [
            "lab-secrets-agent-token",
            *(f"lab-secrets-node{i}-node-password" for i in range(4)),
            "lab-secrets-server-token",
        ]
        assert {inputs["length"] for _, _, inputs in registered} == {48, 32}
        assert "ephemeros:index:Cluster$ephemeros:index:ClusterSecrets::" in values[0]

    return pulumi.Output.all(
        secrets.urn, secrets.server_token, secrets.agent_token, *secrets.node_passwords.values()
    ).apply(check)


@mock_test
def test_generated_secrets_are_secret_outputs(recorder: Recorder) -> pulumi.Output[Any]:
    cluster = make_cluster()
    secrets = cluster.secrets
    outputs = [secrets.server_token, secrets.agent_token, *secrets.node_passwords.values()]

    async def check() -> None:
        for output in outputs:
            assert await output.is_secret()
        assert await secrets.server_token.future() == "generated-lab-secrets-server-token"
        for node in cluster.nodes.values():
            assert not await node.ignition_file.is_secret()  # the public Ignition is public

    return pulumi.Output.from_input(check())


@mock_test
def test_public_ignition_holds_no_generated_or_configured_secret(recorder: Recorder) -> pulumi.Output[Any]:
    cluster = make_cluster()

    def check(_: Any) -> None:
        files = recorder.of_type(":IgnitionFile")
        assert files
        forbidden = [f"generated-lab-secrets-{s}" for s in ("server-token", "agent-token", "node0-node-password")]
        forbidden += list(SECRET_VALUES.values())
        for _, name, inputs in files:
            assert inputs["path"].startswith("build/test/ignition/")
            assert inputs["mode"] == 0o644
            readable = json.dumps(inputs["config"])
            written = to_json(to_ignition(inputs["config"]))
            assert "k3s.service" in readable
            for secret in forbidden:
                assert secret not in readable, f"{secret} in {name}"
                assert secret not in written, f"{secret} in {name}"

    return pulumi.Output.all(*(n.ignition_file for n in cluster.nodes.values())).apply(check)


@mock_test
def test_node_summary_is_the_stack_output_shape(recorder: Recorder) -> pulumi.Output[Any]:
    cluster = make_cluster()
    output = cluster.nodes_output()

    def check(values: list[Any]) -> None:
        role, url, path = values
        assert role == "server"
        assert url == "https://ignition.ephemeros.test/lab/node0.ign"
        assert path.endswith("build/test/ignition/node0.ign")
        assert Path(path).is_absolute()

    node0 = output["node0"]
    return pulumi.Output.all(node0["role"], node0["ignitionUrl"], node0["ignitionFile"]).apply(check)


def make_cluster_with_services() -> Cluster:
    """Heartbeat checks through the API (with the cluster's check) and RFC 2136 records for static nodes."""
    doc, secret = full_settings()
    doc["heartbeat"] = {"provider": "healthchecks", "clusterCheck": True}
    del doc["heartbeatUrls"]
    doc["healthchecksApiKey"] = SECRET_VALUES["healthchecksApiKey"]
    doc["dns"] = {"rfc2136": {"server": "10.0.0.53", "zone": "ephemeros.test", "keyName": "ephemeros"}}
    del doc["namecheapDdnsPassword"]
    doc["dnsTsigSecret"] = SECRET_VALUES["dnsTsigSecret"]
    secret = (secret - {"heartbeatUrls", "namecheapDdnsPassword"}) | {"healthchecksApiKey", "dnsTsigSecret"}
    loaded = load_settings(to_raw(doc), secret_keys(secret))
    boot_files = check_bootloader(loaded.settings.bootloader, REPO)
    updater = REPO / ".tools/nodetools/ephemeros-dnsupdate"
    return Cluster(
        "lab", ClusterArgs(loaded.settings, loaded.credentials, boot_files, BuildDir(Path("build/test")), updater)
    )


@mock_test
def test_a_check_per_node_the_clusters_check_and_records_for_static_nodes(recorder: Recorder) -> pulumi.Output[Any]:
    cluster = make_cluster_with_services()

    def check(urns: list[str]) -> None:
        checks = recorder.of_type(":HeartbeatCheck")
        assert sorted(inputs["name"] for _, _, inputs in checks) == [
            "k3s cluster lab (lab.ephemeros.test)",
            *(f"node{i}.lab.ephemeros.test" for i in (0, 1, 2, 3)),
        ]
        for _, _, inputs in checks:  # sent as a secret: Pulumi's secret wrapper around the value
            assert inputs["apiKey"] == {SECRET_SIG: SECRET_MARKER, "value": SECRET_VALUES["healthchecksApiKey"]}
        records = recorder.of_type(":DnsRecord")
        assert [(inputs["name"], inputs["values"]) for _, _, inputs in records] == [
            ("node0.lab.ephemeros.test", ["192.168.50.10"])  # the only static node, also the API server's name
        ]
        served = sorted(Path(inputs["bootScriptPath"]).name for _, _, inputs in recorder.of_type(":IgnitionFile"))
        assert served == [f"node{i}.ipxe" for i in (0, 1, 2, 3)]  # the Ignition configs, with their boot scripts
        assert len(recorder.of_type(":LocalFile")) == 1  # the published updater
        assert all("ephemeros:index:Cluster$ephemeros:index:Node::" in urn for urn in urns)

    return pulumi.Output.all(*(node.stick_image for node in cluster.nodes.values())).apply(
        lambda _: pulumi.Output.all(*(n.urn for n in cluster.nodes.values())).apply(check)
    )


@mock_test
def test_the_datastores_name_is_kept_on_the_reserved_address(recorder: Recorder) -> pulumi.Output[Any]:
    doc, secret = full_settings()
    doc["dns"] = {"rfc2136": {"server": "10.0.0.53", "zone": "ephemeros.test", "keyName": "ephemeros"}}
    doc["dnsTsigSecret"] = SECRET_VALUES["dnsTsigSecret"]
    doc["vultrApiKey"] = SECRET_VALUES["vultrApiKey"]
    for unused in ("namecheapDdnsPassword", "datastoreEndpoint"):
        del doc[unused]
    secret = (secret - {"namecheapDdnsPassword", "datastoreEndpoint"}) | {"dnsTsigSecret", "vultrApiKey"}
    vultr = {"region": "ams", "allowedSources": ["198.51.100.0/24"], "dnsName": "db.lab.ephemeros.test"}
    doc["datastore"] = {"type": "vultr", "vultr": {**vultr, "waitForPostgres": False}}
    loaded = load_settings(to_raw(doc), secret_keys(secret))
    datastore = Datastore("lab-datastore", DatastoreArgs(loaded.settings, loaded.credentials))

    def check(_: Any) -> None:
        records = [inputs for _, _, inputs in recorder.of_type(":DnsRecord")]
        assert [(r["name"], r["type"], r["values"], r["zone"]) for r in records] == [
            ("db.lab.ephemeros.test", "A", [RESERVED_ADDRESS], "ephemeros.test")
        ]
        certificates = {name: inputs for _, name, inputs in recorder.of_type(":Certificate")}
        server = certificates["lab-datastore-server-certificate"]
        assert server["ipAddresses"] == [RESERVED_ADDRESS]
        assert server["dnsNames"] == ["db.lab.ephemeros.test"]

    return datastore.access.endpoint.apply(check)


def make_cluster_with_addons(manage: bool) -> Cluster:
    doc, secret = full_settings()
    doc["addons"] = {
        "charts": [{"name": "web", "repo": "https://charts.example.com", "chart": "nginx", "version": "1.0.0",
                    "namespace": "web", "values": {"replicas": 2}}],
        "manifests": [{"name": "team", "content": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n"}],
    }  # fmt: skip
    doc["kubernetes"] = {"manage": manage}
    doc["addonValues"] = {"web": "auth:\n  password: add-on-secret-value\n"}
    loaded = load_settings(to_raw(doc), secret_keys(secret | {"addonValues"}))
    boot_files = check_bootloader(loaded.settings.bootloader, REPO)
    return Cluster("lab", ClusterArgs(loaded.settings, loaded.credentials, boot_files, BuildDir(Path("build/test"))))


def pulumi_home_with_kubernetes_plugin(home: Path) -> dict[str, str]:
    """An environment whose PULUMI_HOME holds the Kubernetes plugin where `pulumi plugin install` puts it."""
    plugin = home / "plugins" / f"resource-kubernetes-v{importlib.metadata.version('pulumi_kubernetes')}"
    plugin.mkdir(parents=True)
    (plugin / KUBERNETES_PLUGIN).write_bytes(b"")
    (plugin / KUBERNETES_PLUGIN).chmod(0o755)
    return {"PULUMI_HOME": str(home), "PATH": "/usr/bin:/bin"}


def test_kubernetes_manage_needs_the_clusters_api_to_answer(tmp_path: Path) -> None:
    doc, secret = full_settings()
    doc["kubernetes"] = {"manage": True}
    doc["apiServerAddress"] = "127.0.0.1"
    settings = load_settings(to_raw(doc), secret_keys(secret)).settings
    environ = pulumi_home_with_kubernetes_plugin(tmp_path)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        check_machine(settings, REPO, BuildDir(tmp_path), api_port=port, environ=environ)  # the API answers
    with pytest.raises(PreflightError) as refused:
        check_machine(settings, REPO, BuildDir(tmp_path), api_port=port, environ=environ)  # nothing listens now
    (problem,) = refused.value.problems
    assert problem.startswith("ephemeros:kubernetes.manage: the cluster's API at 127.0.0.1:")
    assert "pulumi up with kubernetes.manage false" in problem


def test_kubernetes_manage_needs_the_kubernetes_plugin(tmp_path: Path) -> None:
    doc, secret = full_settings()
    doc["kubernetes"] = {"manage": True}
    doc["apiServerAddress"] = "127.0.0.1"
    settings = load_settings(to_raw(doc), secret_keys(secret)).settings
    version = importlib.metadata.version("pulumi_kubernetes")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]  # the API answers
        with pytest.raises(PreflightError) as refused:
            check_machine(
                settings,
                REPO,
                BuildDir(tmp_path),
                api_port=port,
                environ={"PULUMI_HOME": str(tmp_path), "PATH": "/bin"},
            )
        (problem,) = refused.value.problems
        assert problem.startswith("ephemeros:kubernetes.manage: Pulumi applies the add-ons through the Kubernetes")
        assert f"pulumi plugin install resource kubernetes v{version}" in problem

        (tmp_path / "bin").mkdir()
        ambient = tmp_path / "bin" / KUBERNETES_PLUGIN
        ambient.write_bytes(b"")
        ambient.chmod(0o755)
        on_path = {"PULUMI_HOME": str(tmp_path), "PATH": str(tmp_path / "bin")}
        check_machine(
            settings, REPO, BuildDir(tmp_path), api_port=port, environ=on_path
        )  # the engine takes a plugin from PATH too
        with pytest.raises(PreflightError):
            check_machine(
                settings,
                REPO,
                BuildDir(tmp_path),
                api_port=port,
                environ=on_path | {"PULUMI_IGNORE_AMBIENT_PLUGINS": "1"},
            )
        check_machine(
            settings,
            REPO,
            BuildDir(tmp_path),
            api_port=port,
            environ=pulumi_home_with_kubernetes_plugin(tmp_path / "home"),
        )


def test_preflight_lists_every_bad_boot_program_with_the_other_problems(tmp_path: Path) -> None:
    doc, secret = full_settings()
    doc["kubernetes"] = {"manage": True}
    doc["apiServerAddress"] = "127.0.0.1"
    doc["bootloader"] = {"ipxeEfi": str(tmp_path / "absent.efi"), "syslinuxDir": str(tmp_path)}
    settings = load_settings(to_raw(doc), secret_keys(secret)).settings
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]  # bound, not listening: nothing answers
        environ = {"PULUMI_HOME": str(tmp_path), "PATH": "/bin"}
        with pytest.raises(PreflightError) as refused:
            check_machine(settings, REPO, BuildDir(tmp_path), api_port=port, environ=environ)
    assert [p.split(":")[1].split(" ")[0] for p in refused.value.problems] == [
        "kubernetes.manage",  # no plugin
        "kubernetes.manage",  # no API
        "bootloader.ipxeEfi",
        "bootloader.syslinuxDir",
    ]


@mock_test
def test_kubernetes_manage_applies_the_addons_through_pulumi_kubernetes(recorder: Recorder) -> pulumi.Output[Any]:
    cluster = make_cluster_with_addons(manage=True)

    def check(_: Any) -> None:
        (provider,) = recorder.of_type("pulumi:providers:kubernetes")
        assert provider[2]["kubeconfig"][SECRET_SIG] == SECRET_MARKER  # the generated kubeconfig, as a secret
        (chart,) = recorder.of_type("kubernetes:helm.sh/v4:Chart")
        assert (chart[2]["chart"], chart[2]["version"], chart[2]["namespace"]) == ("nginx", "1.0.0", "web")
        assert chart[2]["values"][SECRET_SIG] == SECRET_MARKER  # public and secret values merged, kept secret
        assert unwrapped(chart[2]["values"]) == {"replicas": 2, "auth": {"password": "add-on-secret-value"}}
        (namespace,) = recorder.of_type("kubernetes:core/v1:Namespace")
        assert namespace[2]["metadata"]["name"] == "web"
        (group,) = recorder.of_type("kubernetes:yaml/v2:ConfigGroup")
        assert "kind: Namespace" in group[2]["yaml"]
        for _, _, inputs in recorder.of_type(":IgnitionFile"):  # k3s does not also install them
            assert not any("ephemeros-addon" in path for path in inputs["config"]["files"])

    from components.kubernetes_addons import KubernetesAddons  # not at the top: see the next test

    addons = cluster.kubernetes_addons
    assert isinstance(addons, KubernetesAddons)
    return pulumi.Output.all(*(resource.urn for resource in addons.resources)).apply(check)


def test_without_kubernetes_manage_no_kubernetes_sdk_is_loaded() -> None:
    """So a stack that lets k3s install its add-ons needs no Kubernetes provider plugin."""
    script = (
        "import sys, pulumi\n"
        "from tests.mocks import Recorder\n"
        "from tests.test_program import make_cluster_with_addons\n"
        "pulumi.runtime.set_mocks(Recorder(), project='ephemeros', stack='test', preview=False)\n"
        "make_cluster_with_addons(manage=False)\n"
        "assert 'pulumi_kubernetes' not in sys.modules, 'pulumi_kubernetes was imported'\n"
        "print('not loaded')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "not loaded"


def test_sticks_made_before_boot_scripts_were_served_are_named_at_preview(tmp_path: Path) -> None:
    """A stack whose images predate served boot scripts: their sticks still carry the Flatcar version and kernel
    arguments, so the user is told to write them once more; once pulumi up has served the scripts, nothing."""
    settings = load_settings(to_raw(stack_settings("dev")), set()).settings
    build = BuildDir(tmp_path / "build/dev")
    assert check_machine(settings, REPO, build).warnings == ()  # a new stack: nothing was written before
    for node in settings.nodes:
        build.stick_image(node.hostname).parent.mkdir(parents=True, exist_ok=True)
        build.stick_image(node.hostname).write_bytes(b"an old image")
    build.boot_script("node0").parent.mkdir(parents=True)
    build.boot_script("node0").write_text("#!ipxe\n")
    (warning,) = check_machine(settings, REPO, build).warnings
    assert warning.startswith("the sticks of node1, node2 were made by an older ephemeros")
    assert "Write each of these sticks once more" in warning
    for node in settings.nodes:
        build.boot_script(node.hostname).write_text("#!ipxe\n")
    assert check_machine(settings, REPO, build).warnings == ()


def test_a_refresh_or_destroy_is_not_stopped_by_what_only_making_needs(tmp_path: Path) -> None:
    """`make refresh` and `make destroy` run the program too: a stick not plugged in, or the cluster's API down,
    stops a `pulumi up` at preview, never a refresh or destroy (EPHEMEROS_OPERATION, which the Makefile sets)."""
    doc, secret = full_settings()
    doc["nodes"][1]["stick"] = {"device": "/dev/disk/by-id/usb-gone", "confirm": "/dev/disk/by-id/usb-gone"}
    doc["kubernetes"] = {"manage": True}
    doc["apiServerAddress"] = "127.0.0.1"
    settings = load_settings(to_raw(doc), secret_keys(secret)).settings
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]  # bound, not listening: nothing answers
        environ = {"PULUMI_HOME": str(tmp_path), "PATH": "/bin"}
        with pytest.raises(PreflightError) as refused:
            check_machine(settings, REPO, BuildDir(tmp_path), api_port=port, environ=environ)
        keys = sorted({p.split(":")[1].split(" ")[0] for p in refused.value.problems})
        assert keys == ["kubernetes.manage", "nodes[1].stick.device"]
        for operation in ("refresh", "destroy"):
            made = check_machine(
                settings, REPO, BuildDir(tmp_path), api_port=port, environ=environ | {OPERATION: operation}
            )
            assert made.boot_files.ipxe_efi.is_file()
