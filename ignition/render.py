"""Render a node's public Ignition config (spec 3.3.0) from validated settings.

Pure: no Pulumi, no I/O beyond reading the templates. The result holds no secret by construction, since no
credential or generated secret is an input here; the units read those from the stick at run time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from ignition import layout as L
from settings.credentials import Credentials
from settings.dns_plan import namecheap_domain, runtime_names
from settings.model import Node, Settings
from templating import render_template as _render

TEMPLATES = Path(__file__).parent / "templates"
MODE_CONFIG = 0o644
MODE_PRIVATE = 0o600
MODE_EXECUTABLE = 0o755


def render_template(name: str, **values: Any) -> str:
    return _render(TEMPLATES, name, **values)


def data_url(text: str) -> str:
    return "data:," + quote(text, safe="")


def _file(path: str, text: str, mode: int) -> dict[str, Any]:
    return {"path": path, "mode": mode, "overwrite": True, "contents": {"source": data_url(text)}}


def _remote_file(path: str, url: str, sha256: str, mode: int) -> dict[str, Any]:
    """A file Ignition downloads at first boot; a wrong sha256 stops the boot."""
    return {
        "path": path,
        "mode": mode,
        "overwrite": True,
        "contents": {"source": url, "verification": {"hash": f"sha256-{sha256}"}},
    }


def _unit(name: str, contents: str | None = None, *, enabled: bool = True, mask: bool = False) -> dict[str, Any]:
    unit: dict[str, Any] = {"name": name}
    if mask:
        unit["mask"] = True
        return unit
    unit["enabled"] = enabled
    if contents is not None:
        unit["contents"] = contents
    return unit


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

    joins = node.role == "agent" or (settings.datastore.type == "etcd" and node != settings.servers[0])
    if joins:
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
        if settings.datastore.type == "etcd" and not joins:
            config["cluster-init"] = True
    return config


def _network_files(node: Node) -> list[dict[str, Any]]:
    """systemd-networkd files, only when the node needs more than Flatcar's default DHCP everywhere."""
    if node.bond is None and node.address is None and not node.interfaces:
        return []
    values = {
        "bond": node.bond,
        "interfaces": node.interfaces,
        "mac": node.mac,
        "address": node.address,
        "gateway": node.gateway,
        "nameservers": node.nameservers,
    }
    files = [
        _file(f"{L.NETWORK_DIR}/10-ephemeros.network", render_template("network/node.network", **values), MODE_CONFIG)
    ]
    if node.bond is not None:
        files += [
            _file(
                f"{L.NETWORK_DIR}/00-ephemeros-bond.netdev",
                render_template("network/bond.netdev", **values),
                MODE_CONFIG,
            ),
            _file(
                f"{L.NETWORK_DIR}/00-ephemeros-bond-members.network",
                render_template("network/bond-members.network", **values),
                MODE_CONFIG,
            ),
        ]
    return files


def _ddns(settings: Settings, node: Node, dns_updater_sha256: str | None) -> tuple[list[Any], list[Any]]:
    """The unit that keeps this node's own DNS names current, when it has any (see settings.dns_plan)."""
    names = runtime_names(settings, node)
    dns = settings.dns
    if not names or dns is None:
        return [], []
    via_rfc2136 = any(n.via_rfc2136 for n in names)
    script = render_template(
        "scripts/ddns.sh",
        names=names,
        namecheap=dns.namecheap,
        namecheap_domain=namecheap_domain(settings),
        rfc2136=dns.rfc2136 if via_rfc2136 else None,
    )
    files = [_file(L.DDNS_SCRIPT, script, MODE_EXECUTABLE)]
    if via_rfc2136:
        if dns_updater_sha256 is None:
            raise ValueError("the DNS updater's sha256 is needed to render a node that updates RFC 2136 records")
        url = f"{settings.ignition_base_url}/{L.DNS_UPDATER_URL_PATH}"
        files.append(_remote_file(L.DNS_UPDATER, url, dns_updater_sha256, MODE_EXECUTABLE))
    units = [
        _unit(L.DDNS_UNIT, render_template("units/ddns.service"), enabled=False),
        _unit(L.DDNS_TIMER, render_template("units/ddns.timer", period=dns.update_period)),
    ]
    return files, units


def render_node_config(
    settings: Settings, node: Node, credentials: Credentials, dns_updater_sha256: str | None = None
) -> dict[str, Any]:
    """The Ignition config for one node. `credentials` only says which features are on; no value is read.

    `dns_updater_sha256` pins the RFC 2136 updater that nodes on DHCP download from next to their configs.
    """
    files = [
        _file("/etc/hostname", f"{node.hostname}\n", MODE_CONFIG),
        _remote_file(L.K3S_BINARY, settings.k3s.binary_url, settings.k3s.sha256, MODE_EXECUTABLE),
        _file(L.K3S_CONFIG, yaml.safe_dump(k3s_config(settings, node), sort_keys=True), MODE_PRIVATE),
        *_network_files(node),
    ]
    links = [
        {"path": f"{L.OPT_BIN}/{name}", "target": L.K3S_BINARY, "hard": False, "overwrite": True}
        for name in L.K3S_LINKS
    ]
    datastore_env = node.role == "server" and settings.datastore.type == "postgres"
    units = [
        _unit(L.SECRETS_MOUNT_UNIT, render_template("units/secrets.mount")),
        _unit(L.K3S_UNIT, render_template("units/k3s.service", role=node.role, datastore_env=datastore_env)),
        # Nodes run from RAM and are updated by rebooting into a new release, never in place.
        _unit("update-engine.service", mask=True),
        _unit("locksmithd.service", mask=True),
    ]
    if credentials.log_export_target:
        units.append(_unit(L.LOG_EXPORT_UNIT, render_template("units/log-export.service")))
    if settings.heartbeat is not None:
        files.append(_file(L.HEARTBEAT_SCRIPT, render_template("scripts/heartbeat.sh"), MODE_EXECUTABLE))
        units += [
            _unit(L.HEARTBEAT_UNIT, render_template("units/heartbeat.service", role=node.role), enabled=False),
            _unit(L.HEARTBEAT_TIMER, render_template("units/heartbeat.timer", period=settings.heartbeat.period)),
        ]
    ddns_files, ddns_units = _ddns(settings, node, dns_updater_sha256)
    files += ddns_files
    units += ddns_units

    return {
        "ignition": {"version": L.IGNITION_SPEC_VERSION},
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": list(settings.ssh_keys)}]},
        "storage": {"files": files, "links": links},
        "systemd": {"units": units},
    }


def to_json(config: dict[str, Any]) -> str:
    """Stable serialization, so an unchanged config is byte-for-byte unchanged."""
    return json.dumps(config, sort_keys=True, separators=(",", ":")) + "\n"
