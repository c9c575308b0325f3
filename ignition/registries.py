"""Image registries in a node's Ignition (settings.registries): the public part of k3s's registries.yaml, the CA
certificates it names, the unit that joins it with the credentials from the stick before k3s starts, and k3s's
settings for its embedded registry mirror."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import yaml

from base import node_layout as L
from base.registries_file import configs_entries
from ignition.parts import MODE_CONFIG, MODE_EXECUTABLE, MODE_PRIVATE, File, Unit, render_template
from settings.model import Node, Settings
from settings.registries import Registries, tls_entry


def registry_k3s_config(settings: Settings, node: Node) -> dict[str, Any]:
    """Entries of the node's k3s config.yaml: the embedded mirror is a server setting that turns it on cluster-wide
    (each node then shares the registries its registries.yaml lists)."""
    registries = settings.registries
    config: dict[str, Any] = {}
    if registries.embedded_mirror and node.role == "server":
        config["embedded-registry"] = True
    if registries.disable_default_endpoint:
        config["disable-default-registry-endpoint"] = True
    return config


def public_part(registries: Registries, auth_hosts: Collection[str]) -> str:
    """registries.yaml but for the entries of hosts with credentials: `mirrors`, then `configs` last and open, so
    that the stick's part can follow it."""
    mirrors: dict[str, Any] = {}
    for mirror in registries.mirrors:
        entry: dict[str, Any] = {}
        if mirror.endpoints:
            entry["endpoint"] = list(mirror.endpoints)
        if mirror.rewrite:
            entry["rewrite"] = dict(mirror.rewrite)
        mirrors[mirror.registry] = entry
    configs = {c.host: tls_entry(registries, c.host) for c in registries.configs if c.host not in auth_hosts}
    text = yaml.safe_dump({"mirrors": mirrors}, sort_keys=True, default_flow_style=False)
    return text + "configs:\n" + configs_entries({host: entry for host, entry in configs.items() if entry})


def registry_files(settings: Settings, auth_hosts: Collection[str]) -> tuple[dict[str, File], dict[str, Unit]]:
    """The public part of registries.yaml, the CAs it names, and the unit that completes it before k3s starts.
    `auth_hosts`: the registry hosts with credentials (registryAuth), whose entries are on the stick instead."""
    registries = settings.registries
    if not registries.configured and not auth_hosts:
        return {}, {}
    files: dict[str, File] = {
        L.REGISTRIES_PUBLIC: {"mode": MODE_PRIVATE, "text": public_part(registries, auth_hosts)},
        L.REGISTRIES_SCRIPT: {"mode": MODE_EXECUTABLE, "text": render_template("scripts/registries.sh")},
    }
    for config in registries.configs:
        if config.ca_cert is not None:
            files[L.registry_ca_file(config.host)] = {"mode": MODE_CONFIG, "text": config.ca_cert}
    units: dict[str, Unit] = {
        L.REGISTRIES_UNIT: {"enabled": True, "text": render_template("units/registries.service")},
    }
    return files, units
