"""The files of a node's secrets partition: only what that node needs. Pure.

Each file is read by a unit in the node's Ignition (see base/node_layout.py for the names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from base import node_layout as L
from settings.credentials import Credentials
from settings.dns_plan import runtime_names
from settings.model import Node, Settings


@dataclass(frozen=True)
class GeneratedSecrets:
    """The secrets Pulumi made for one node (cluster-wide ones included)."""

    server_token: str = field(repr=False)
    agent_token: str = field(repr=False)
    node_password: str = field(repr=False)
    heartbeat_url: str | None = field(default=None, repr=False)
    cluster_heartbeat_url: str | None = field(default=None, repr=False)  # pinged by healthy servers


def env_file(values: Mapping[str, str]) -> str:
    """A systemd EnvironmentFile: each value double-quoted, with backslash and double quote escaped."""
    lines = []
    for key, value in values.items():
        if "\n" in value:
            raise ValueError(f"{key} holds a newline, which an environment file cannot carry")
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{key}="{escaped}"')
    return "\n".join(lines) + "\n"


def secret_files(
    settings: Settings, node: Node, credentials: Credentials, generated: GeneratedSecrets
) -> dict[str, str]:
    """File name -> content for `node`'s secrets partition."""
    if node.role == "server":
        k3s = {"K3S_TOKEN": generated.server_token, "K3S_AGENT_TOKEN": generated.agent_token}
    else:
        k3s = {"K3S_TOKEN": generated.agent_token}
    files = {
        L.K3S_ENV: env_file(k3s),
        L.NODE_PASSWORD: generated.node_password + "\n",
        L.NODE_IDENTITY: env_file({"NODE_NAME": node.hostname, "CLUSTER_NAME": settings.cluster_name}),
    }
    if node.role == "server" and settings.datastore.type == "postgres" and credentials.datastore_endpoint:
        files[L.DATASTORE_ENV] = env_file({"K3S_DATASTORE_ENDPOINT": credentials.datastore_endpoint})
    if settings.heartbeat is not None and generated.heartbeat_url:
        heartbeat = {"HEARTBEAT_URL": generated.heartbeat_url}
        if node.role == "server" and generated.cluster_heartbeat_url:
            heartbeat["CLUSTER_HEARTBEAT_URL"] = generated.cluster_heartbeat_url
        files[L.HEARTBEAT_ENV] = env_file(heartbeat)
    if credentials.log_export_target:
        host, _, port = credentials.log_export_target.rpartition(":")
        files[L.LOG_EXPORT_ENV] = env_file({"LOGEXPORT_HOST": host, "LOGEXPORT_PORT": port})
    ddns = {}
    names = runtime_names(settings, node)
    if any(n.via_namecheap for n in names) and credentials.namecheap_ddns_password:
        ddns["NAMECHEAP_DDNS_PASSWORD"] = credentials.namecheap_ddns_password
    if any(n.via_rfc2136 for n in names) and credentials.dns_tsig_secret:
        ddns["DNS_TSIG_SECRET"] = credentials.dns_tsig_secret
    if ddns:
        files[L.DDNS_ENV] = env_file(ddns)
    return files


def _stand_ins(heartbeat: bool, cluster_heartbeat: bool) -> dict[str, str | None]:
    """A distinct stand-in for each generated secret (None for a heartbeat URL the node does not have)."""
    values: dict[str, str | None] = {f.name: f"<{f.name}>" for f in fields(GeneratedSecrets)}
    values["heartbeat_url"] = values["heartbeat_url"] if heartbeat else None
    values["cluster_heartbeat_url"] = values["cluster_heartbeat_url"] if cluster_heartbeat else None
    return values


def file_sources(
    settings: Settings, node: Node, credentials: Credentials, *, heartbeat: bool, cluster_heartbeat: bool
) -> dict[str, tuple[str, ...]]:
    """`node`'s secret files, each with the generated secrets (GeneratedSecrets fields) it is made from.

    Known before the secrets are: the files are made with a distinct stand-in for each secret, and each file's
    sources are the stand-ins found in it. So each file can be made as soon as its own secrets are known.
    """
    stand_ins = _stand_ins(heartbeat, cluster_heartbeat)
    files = secret_files(settings, node, credentials, GeneratedSecrets(**stand_ins))  # type: ignore[arg-type]
    return {
        name: tuple(source for source, value in stand_ins.items() if value is not None and value in content)
        for name, content in files.items()
    }


def secret_file(
    settings: Settings, node: Node, credentials: Credentials, name: str, sources: Mapping[str, str | None]
) -> str:
    """The content of `node`'s secret file `name`, from the generated secrets it is made from (file_sources)."""
    stand_ins = _stand_ins(heartbeat=True, cluster_heartbeat=True)
    generated = GeneratedSecrets(**{**stand_ins, **sources})  # type: ignore[arg-type]
    return secret_files(settings, node, credentials, generated)[name]
