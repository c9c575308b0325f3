"""Render a node's public Ignition config (spec 3.3.0) from validated settings.

Pure: no Pulumi, no I/O beyond reading the templates. The result holds no secret by construction: no credential
and no generated secret is an input here (the units read those from the stick at run time), which the signature
of `node_config` enforces.

A node's config is first made in a readable form, `NodeConfig` (files by path with their text, units by name),
which is what `pulumi preview --diff` shows; `to_ignition` turns it into Ignition's JSON form (data: URLs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from typing import Any, NotRequired, TypedDict
from urllib.parse import quote

import yaml

from base import node_layout as L
from ignition.parts import MODE_CONFIG, MODE_EXECUTABLE, MODE_PRIVATE, File, Unit
from ignition.parts import render_template as render_template
from ignition.registries import registry_files, registry_k3s_config
from ignition.snippets import merged_snippets
from ignition.updates import update_files
from settings.addons import HelmChart
from settings.dns_plan import namecheap_domain
from settings.model import Node, Settings
from settings.node_plan import NodePlan

CLAIM_PERIODS = 3  # a server's claim on a shared name lasts this many DNS update periods without renewal


class NodeConfig(TypedDict):
    users: dict[str, list[str]]  # user -> SSH keys
    files: dict[str, File]  # path -> file
    links: dict[str, str]  # path -> target
    units: dict[str, Unit]  # unit name -> unit
    snippets: NotRequired[list[str]]  # the user's Ignition fragments (JSON), merged by Ignition in this order


def _text(text: str, mode: int) -> File:
    return {"mode": mode, "text": text}


def _download(url: str, sha256: str, mode: int) -> File:
    """A file Ignition downloads at first boot; a wrong sha256 stops the boot."""
    return {"mode": mode, "url": url, "sha256": sha256}


def k3s_config(settings: Settings, node: Node) -> dict[str, Any]:
    """The node's /etc/rancher/k3s/config.yaml: every non-secret k3s setting."""
    k3s = settings.k3s
    config: dict[str, Any] = {"node-name": node.hostname}
    if node.labels:
        config["node-label"] = [f"{k}={v}" for k, v in sorted(node.labels.items())]
    if node.taints:
        config["node-taint"] = list(node.taints)
    if node.address is not None:
        config["node-ip"] = str(node.address.ip)

    # With embedded etcd, whether a server joins (and whom) or starts the cluster is decided at each boot by the
    # rejoin unit, in a drop-in: see etcd_rejoin below.
    if node.role == "agent":
        config["server"] = settings.api_server_url
    if node.role == "server":
        sans = {settings.api_server, settings.fqdn(node)}
        if node.address is not None:
            sans.add(str(node.address.ip))
        config["tls-san"] = sorted(sans)
        config["cluster-cidr"] = str(k3s.cluster_cidr)
        config["service-cidr"] = str(k3s.service_cidr)
        config["write-kubeconfig-mode"] = "0600"
        if k3s.disable:
            config["disable"] = list(k3s.disable)
    return config | registry_k3s_config(settings, node)


def _etcd_rejoin(
    settings: Settings, plan: NodePlan, tool_sha256: str | None
) -> tuple[dict[str, File], dict[str, Unit]]:
    """A server with embedded etcd, before k3s starts at each boot: its stale etcd member (its data went with the
    last boot) removed through the other servers, and k3s told to join one of them; or, on the first server when
    none answers, to start the cluster."""
    if not plan.etcd_rejoin:
        return {}, {}
    node = plan.node
    if tool_sha256 is None:
        raise ValueError("the etcd rejoin tool's sha256 is needed to render a server with embedded etcd")
    peers = [str(s.address.ip) if s.address else settings.fqdn(s) for s in settings.servers if s != node]
    url = f"{settings.ignition_base_url}/{L.ETCD_REJOIN_URL_PATH}"
    unit = render_template(
        "units/etcd-rejoin.service",
        node_name=node.hostname,
        address=str(node.address.ip) if node.address else None,
        peers=",".join(peers),
        may_init=node == settings.servers[0],
    )
    return {L.ETCD_REJOIN: _download(url, tool_sha256, MODE_EXECUTABLE)}, {
        L.ETCD_REJOIN_UNIT: {"enabled": True, "text": unit}
    }


def _network_files(node: Node) -> dict[str, File]:
    """systemd-networkd files, only when the node needs more than Flatcar's default DHCP everywhere."""
    if node.bond is None and node.address is None and not node.interfaces:
        return {}
    values = {
        "bond": node.bond,
        "interfaces": node.interfaces,
        "mac": node.mac,
        "address": node.address,
        "gateway": node.gateway,
        "nameservers": node.nameservers,
    }
    files = {
        f"{L.NETWORK_DIR}/10-ephemeros.network": _text(render_template("network/node.network", **values), MODE_CONFIG)
    }
    if node.bond is not None:
        files[f"{L.NETWORK_DIR}/00-ephemeros-bond.netdev"] = _text(
            render_template("network/bond.netdev", **values), MODE_CONFIG
        )
        files[f"{L.NETWORK_DIR}/00-ephemeros-bond-members.network"] = _text(
            render_template("network/bond-members.network", **values), MODE_CONFIG
        )
    return files


def _ddns(
    settings: Settings, plan: NodePlan, dns_updater_sha256: str | None
) -> tuple[dict[str, File], dict[str, Unit]]:
    """The unit that keeps this node's own DNS names current, when it has any (see settings.dns_plan)."""
    names = plan.dns_names
    dns = settings.dns
    if not names or dns is None:
        return {}, {}
    via_rfc2136 = any(n.via_rfc2136 for n in names)
    script = render_template(
        "scripts/ddns.sh",
        names=names,
        namecheap=dns.namecheap,
        namecheap_domain=namecheap_domain(settings),
        rfc2136=dns.rfc2136 if via_rfc2136 else None,
        lease=CLAIM_PERIODS * dns.update_period,
    )
    files = {L.DDNS_SCRIPT: _text(script, MODE_EXECUTABLE)}
    if via_rfc2136:
        if dns_updater_sha256 is None:
            raise ValueError("the DNS updater's sha256 is needed to render a node that updates RFC 2136 records")
        url = f"{settings.ignition_base_url}/{L.DNS_UPDATER_URL_PATH}"
        files[L.DNS_UPDATER] = _download(url, dns_updater_sha256, MODE_EXECUTABLE)
    units: dict[str, Unit] = {
        L.DDNS_UNIT: {"enabled": False, "text": render_template("units/ddns.service")},
        L.DDNS_TIMER: {"enabled": True, "text": render_template("units/ddns.timer", period=dns.update_period)},
    }
    return files, units


def helm_chart(chart: HelmChart, secret_values: bool) -> dict[str, Any]:
    """k3s's HelmChart object for `chart` (helm.cattle.io/v1), its secret values read from a Secret."""
    spec: dict[str, Any] = {
        "repo": chart.repo,
        "chart": chart.chart,
        "version": chart.version,
        "targetNamespace": chart.namespace,
        "createNamespace": True,
    }
    if chart.values:
        spec["valuesContent"] = yaml.safe_dump(chart.values, sort_keys=True)
    if secret_values:
        spec["valuesSecrets"] = [{"name": L.addon_values_secret(chart.name), "keys": ["values.yaml"]}]
    return {
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChart",
        "metadata": {"name": chart.name, "namespace": "kube-system"},
        "spec": spec,
    }


def addon_manifests(settings: Settings, secret_values: Collection[str]) -> dict[str, str]:
    """Path on a server -> the manifest k3s applies for each add-on (when k3s, not Pulumi, installs them)."""
    if settings.kubernetes.manage:
        return {}
    manifests = {
        L.addon_manifest(chart.name): yaml.safe_dump(helm_chart(chart, chart.name in secret_values), sort_keys=False)
        for chart in settings.addons.charts
    }
    for manifest in settings.addons.manifests:
        manifests[L.addon_manifest(manifest.name)] = manifest.content
    return manifests


def node_config(
    settings: Settings,
    plan: NodePlan,
    *,
    dns_updater_sha256: str | None = None,
    etcd_rejoin_sha256: str | None = None,
    stick_files: Collection[str] = (),
) -> NodeConfig:
    """The readable config of the node `plan` is for.

    `dns_updater_sha256` pins the RFC 2136 updater that nodes on DHCP download from next to their configs.
    `etcd_rejoin_sha256` pins the etcd rejoin tool that servers with embedded etcd download likewise.
    `stick_files`: the names of the files on the node's stick (not their content), which the update check needs.
    """
    node = plan.node
    files: dict[str, File] = {
        "/etc/hostname": _text(f"{node.hostname}\n", MODE_CONFIG),
        L.K3S_BINARY: _download(settings.k3s.binary_url, settings.k3s.sha256, MODE_EXECUTABLE),
        L.K3S_CONFIG: _text(yaml.safe_dump(k3s_config(settings, node), sort_keys=True), MODE_PRIVATE),
        **_network_files(node),
    }
    datastore_env = plan.datastore is not None
    units: dict[str, Unit] = {
        L.SECRETS_MOUNT_UNIT: {"enabled": True, "text": render_template("units/secrets.mount")},
        L.K3S_UNIT: {
            "enabled": True,
            "text": render_template("units/k3s.service", role=node.role, datastore_env=datastore_env),
        },
        # Nodes run from RAM and are updated by rebooting into a new release, never in place.
        "update-engine.service": {"mask": True},
        "locksmithd.service": {"mask": True},
    }
    if node.role == "server" and settings.kube_vip is not None:
        manifest = render_template(
            "manifests/kube-vip.yaml",
            address=settings.api_server,
            port=L.K3S_API_PORT,
            interface=settings.kube_vip.interface,  # set: settings.model.KubeVip checks it
            image=settings.kube_vip.image,
        )
        files[L.KUBE_VIP_MANIFEST] = _text(manifest, MODE_PRIVATE)
    if node.role == "server":
        for path, manifest in addon_manifests(settings, plan.addon_secret_values).items():
            files[path] = _text(manifest, MODE_PRIVATE)
        values = {L.addon_values_file(chart): L.addon_values_manifest(chart) for chart in plan.addon_secret_values}
        script = render_template("scripts/server-files.sh", pki=L.pki_files(), manifests=values)
        files[L.SERVER_FILES_SCRIPT] = _text(script, MODE_EXECUTABLE)
        units[L.SERVER_FILES_UNIT] = {"enabled": True, "text": render_template("units/ephemeros-server-files.service")}
    if plan.log_export:
        units[L.LOG_EXPORT_UNIT] = {"enabled": True, "text": render_template("units/log-export.service")}
    if plan.heartbeat is not None and settings.heartbeat is not None:
        files[L.HEARTBEAT_SCRIPT] = _text(render_template("scripts/heartbeat.sh"), MODE_EXECUTABLE)
        units[L.HEARTBEAT_UNIT] = {
            "enabled": False,
            "text": render_template("units/heartbeat.service", role=node.role),
        }
        units[L.HEARTBEAT_TIMER] = {
            "enabled": True,
            "text": render_template("units/heartbeat.timer", period=settings.heartbeat.period),
        }
    ddns_files, ddns_units = _ddns(settings, plan, dns_updater_sha256)
    etcd_files, etcd_units = _etcd_rejoin(settings, plan, etcd_rejoin_sha256)
    files |= etcd_files
    units |= etcd_units
    for feature_files, feature_units in (
        update_files(settings, node, stick_files),
        registry_files(settings, plan.registry_auth_hosts),
    ):
        files |= feature_files
        units |= feature_units
    config: NodeConfig = {
        "users": {"core": list(settings.ssh_keys)},
        "files": files | ddns_files,
        "links": {f"{L.OPT_BIN}/{name}": L.K3S_BINARY for name in L.K3S_LINKS},
        "units": units | ddns_units,
    }
    snippets = merged_snippets(settings, node)
    if snippets:
        config["snippets"] = snippets
    # The node reports this in its heartbeat: which config it booted (the digest of everything but itself).
    config["files"][L.CONFIG_DIGEST] = _text(digest(config) + "\n", MODE_CONFIG)
    return config


def digest(config: NodeConfig) -> str:
    """sha256 of the Ignition form of `config`, leaving out its own digest file."""
    files = {path: file for path, file in config["files"].items() if path != L.CONFIG_DIGEST}
    return hashlib.sha256(to_json(to_ignition({**config, "files": files})).encode()).hexdigest()


def config_digest(config: NodeConfig) -> str:
    """The digest a node booted from `config` reports."""
    return config["files"][L.CONFIG_DIGEST]["text"].strip()


def data_url(text: str) -> str:
    return "data:," + quote(text, safe="")


def _ignition_file(path: str, file: File) -> dict[str, Any]:
    if "url" in file:
        contents = {"source": file["url"], "verification": {"hash": f"sha256-{file['sha256']}"}}
    else:
        contents = {"source": data_url(file["text"])}
    # int(): the readable form may have been through Pulumi, which hands numbers back as floats.
    return {"path": path, "mode": int(file["mode"]), "overwrite": True, "contents": contents}


def _ignition_unit(name: str, unit: Unit) -> dict[str, Any]:
    if unit.get("mask"):
        return {"name": name, "mask": True}
    return {"name": name, "enabled": unit["enabled"], "contents": unit["text"]}


def to_ignition(config: NodeConfig) -> dict[str, Any]:
    """Ignition's form of a node's config, the same whatever order the readable form's entries come in."""
    ignition: dict[str, Any] = {"version": L.IGNITION_SPEC_VERSION}
    if config.get("snippets"):
        ignition["config"] = {"merge": [{"source": data_url(snippet)} for snippet in config["snippets"]]}
    return {
        "ignition": ignition,
        "passwd": {
            "users": [{"name": user, "sshAuthorizedKeys": keys} for user, keys in sorted(config["users"].items())]
        },
        "storage": {
            "files": [_ignition_file(path, file) for path, file in sorted(config["files"].items())],
            "links": [
                {"path": path, "target": target, "hard": False, "overwrite": True}
                for path, target in sorted(config["links"].items())
            ],
        },
        "systemd": {"units": [_ignition_unit(name, unit) for name, unit in sorted(config["units"].items())]},
    }


def to_json(config: dict[str, Any]) -> str:
    """Stable serialization, so an unchanged config is byte-for-byte unchanged."""
    return json.dumps(config, sort_keys=True, separators=(",", ":")) + "\n"
