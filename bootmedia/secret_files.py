"""The files of a node's secrets partition: only what that node needs (its plan says what). Pure.

Each file is read by a unit in the node's Ignition (see base/node_layout.py for the names). `stick_files` says,
before any secret is known, which files a node gets and which of the secrets Pulumi makes (by their names, the
Sources) each is made from, so each file can be made as soon as its own secrets are, and a preview shows only the
files a change touches. The cluster's PKI files, which servers also carry, come from components.cluster_pki.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import yaml

from base import node_layout as L
from base.envfile import env_file
from base.registries_file import configs_entries
from settings.credentials import Credentials
from settings.model import Settings
from settings.node_plan import NodePlan
from settings.registries import stick_entries

# The secrets Pulumi makes for a node (cluster-wide ones included), by name.
Source = Literal[
    "server_token",  # servers join with it: K10<CA hash>::server:<password>
    "agent_token",  # the agents' password, which servers accept
    "agent_join_token",  # K10<CA hash>::node:<password>, for agents
    "node_password",
    "heartbeat_url",
    "cluster_heartbeat_url",  # pinged by healthy servers
    "datastore_endpoint",  # the Vultr datastore's, on servers
    "datastore_ca",  # its CA certificate (PEM), to verify it
]


@dataclass(frozen=True)
class StickFile:
    """One file of the secrets partition: the generated secrets it is made from, and how it is made of them."""

    sources: tuple[Source, ...]
    make: Callable[[Mapping[Source, str]], str] = field(repr=False)

    def content(self, values: Mapping[str, str | None]) -> str:
        """The file, from `values` by source name (others are ignored)."""
        chosen = {source: values.get(source) for source in self.sources}
        missing = [source for source, value in chosen.items() if value is None]
        if missing:
            raise ValueError(f"a stick file is made from {', '.join(missing)}, which was not made")
        return self.make({source: value for source, value in chosen.items() if value is not None})


def _fixed(content: str) -> StickFile:
    return StickFile((), lambda _: content)


def stick_files(settings: Settings, plan: NodePlan, credentials: Credentials) -> dict[str, StickFile]:
    """File name -> how the file of the node's secrets partition is made."""
    node = plan.node
    files: dict[str, StickFile] = {
        L.NODE_PASSWORD: StickFile(("node_password",), lambda v: v["node_password"] + "\n"),
        L.NODE_IDENTITY: _fixed(env_file({"NODE_NAME": node.hostname, "CLUSTER_NAME": settings.cluster_name})),
    }
    if plan.server:
        files[L.K3S_ENV] = StickFile(
            ("server_token", "agent_token"),
            lambda v: env_file({"K3S_TOKEN": v["server_token"], "K3S_AGENT_TOKEN": v["agent_token"]}),
        )
    else:
        files[L.K3S_ENV] = StickFile(("agent_join_token",), lambda v: env_file({"K3S_TOKEN": v["agent_join_token"]}))
    if plan.datastore == "given":
        if not credentials.datastore_endpoint:
            raise ValueError(f"server {node.hostname} needs the datastore's endpoint, and none was given")
        files[L.DATASTORE_ENV] = _fixed(env_file({"K3S_DATASTORE_ENDPOINT": credentials.datastore_endpoint}))
    elif plan.datastore == "vultr":
        files[L.DATASTORE_CA] = StickFile(("datastore_ca",), lambda v: v["datastore_ca"])
        files[L.DATASTORE_ENV] = StickFile(
            ("datastore_endpoint",),
            lambda v: env_file(
                {
                    "K3S_DATASTORE_ENDPOINT": v["datastore_endpoint"],
                    "K3S_DATASTORE_CAFILE": f"{L.SECRETS_DIR}/{L.DATASTORE_CA}",
                }
            ),
        )
    if plan.heartbeat is not None and plan.cluster_heartbeat:
        files[L.HEARTBEAT_ENV] = StickFile(
            ("heartbeat_url", "cluster_heartbeat_url"),
            lambda v: env_file(
                {"HEARTBEAT_URL": v["heartbeat_url"], "CLUSTER_HEARTBEAT_URL": v["cluster_heartbeat_url"]}
            ),
        )
    elif plan.heartbeat is not None:
        files[L.HEARTBEAT_ENV] = StickFile(
            ("heartbeat_url",), lambda v: env_file({"HEARTBEAT_URL": v["heartbeat_url"]})
        )
    if plan.log_export and credentials.log_export_target:
        host, _, port = credentials.log_export_target.rpartition(":")
        files[L.LOG_EXPORT_ENV] = _fixed(env_file({"LOGEXPORT_HOST": host, "LOGEXPORT_PORT": port}))
    for chart in plan.addon_secret_values:
        files[L.addon_values_file(chart)] = _fixed(addon_values_secret(chart, credentials.addon_values[chart]))
    ddns = {}
    if any(n.via_namecheap for n in plan.dns_names) and credentials.namecheap_ddns_password:
        ddns["NAMECHEAP_DDNS_PASSWORD"] = credentials.namecheap_ddns_password
    if any(n.via_rfc2136 for n in plan.dns_names) and credentials.dns_tsig_secret:
        ddns["DNS_TSIG_SECRET"] = credentials.dns_tsig_secret
    if ddns:
        files[L.DDNS_ENV] = _fixed(env_file(ddns))
    if plan.registry_auth_hosts:
        auth = stick_entries(settings.registries, credentials.registry_auth)
        files[L.REGISTRIES_AUTH] = _fixed(configs_entries(auth))
    return files


def addon_values_secret(chart: str, values: str) -> str:
    """A Secret manifest holding a chart's secret values, for its HelmChart's valuesSecrets."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": L.addon_values_secret(chart), "namespace": "kube-system"},
        "type": "Opaque",
        "stringData": {"values.yaml": values},
    }
    return yaml.safe_dump(secret, sort_keys=False)
