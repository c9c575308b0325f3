"""The files of a node's secrets partition: only what that node needs. Pure.

Each file is read by a unit in the node's Ignition (see base/node_layout.py for the names).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields

import yaml

from base import node_layout as L
from base.envfile import env_file
from settings.credentials import Credentials
from settings.dns_plan import runtime_names
from settings.model import Node, Settings


@dataclass(frozen=True)
class GeneratedSecrets:
    """The secrets Pulumi made for one node (cluster-wide ones included)."""

    server_token: str = field(repr=False)  # servers join with it: K10<CA hash>::server:<password>
    agent_token: str = field(repr=False)  # the agents' password, which servers accept
    node_password: str = field(repr=False)
    heartbeat_url: str | None = field(default=None, repr=False)
    cluster_heartbeat_url: str | None = field(default=None, repr=False)  # pinged by healthy servers
    datastore_endpoint: str | None = field(default=None, repr=False)  # the Vultr datastore's, on servers
    datastore_ca: str | None = field(default=None, repr=False)  # its CA certificate (PEM), to verify it
    agent_join_token: str | None = field(default=None, repr=False)  # K10<CA hash>::node:<password>, for agents


def secret_files(
    settings: Settings, node: Node, credentials: Credentials, generated: GeneratedSecrets
) -> dict[str, str]:
    """File name -> content for `node`'s secrets partition."""
    if node.role == "server":
        k3s = {"K3S_TOKEN": generated.server_token, "K3S_AGENT_TOKEN": generated.agent_token}
    else:
        k3s = {"K3S_TOKEN": generated.agent_join_token or generated.agent_token}
    files = {
        L.K3S_ENV: env_file(k3s),
        L.NODE_PASSWORD: generated.node_password + "\n",
        L.NODE_IDENTITY: env_file({"NODE_NAME": node.hostname, "CLUSTER_NAME": settings.cluster_name}),
    }
    if node.role == "server" and settings.datastore.external:
        endpoint = credentials.datastore_endpoint or generated.datastore_endpoint  # set by the user, or made here
        if not endpoint:
            raise ValueError(f"server {node.hostname} needs the datastore's endpoint, and none was given")
        datastore = {"K3S_DATASTORE_ENDPOINT": endpoint}
        if generated.datastore_ca:
            files[L.DATASTORE_CA] = generated.datastore_ca
            datastore["K3S_DATASTORE_CAFILE"] = f"{L.SECRETS_DIR}/{L.DATASTORE_CA}"
        files[L.DATASTORE_ENV] = env_file(datastore)
    if settings.heartbeat is not None and generated.heartbeat_url:
        heartbeat = {"HEARTBEAT_URL": generated.heartbeat_url}
        if node.role == "server" and generated.cluster_heartbeat_url:
            heartbeat["CLUSTER_HEARTBEAT_URL"] = generated.cluster_heartbeat_url
        files[L.HEARTBEAT_ENV] = env_file(heartbeat)
    if credentials.log_export_target:
        host, _, port = credentials.log_export_target.rpartition(":")
        files[L.LOG_EXPORT_ENV] = env_file({"LOGEXPORT_HOST": host, "LOGEXPORT_PORT": port})
    if node.role == "server" and not settings.kubernetes.manage:
        for chart, values in credentials.addon_values.items():
            files[L.addon_values_file(chart)] = addon_values_secret(chart, values)
    ddns = {}
    names = runtime_names(settings, node)
    if any(n.via_namecheap for n in names) and credentials.namecheap_ddns_password:
        ddns["NAMECHEAP_DDNS_PASSWORD"] = credentials.namecheap_ddns_password
    if any(n.via_rfc2136 for n in names) and credentials.dns_tsig_secret:
        ddns["DNS_TSIG_SECRET"] = credentials.dns_tsig_secret
    if ddns:
        files[L.DDNS_ENV] = env_file(ddns)
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


def _stand_ins(present: Collection[str]) -> dict[str, str | None]:
    """A distinct stand-in for each generated secret in `present` (None for the optional ones a node lacks)."""
    optional = {f.name for f in fields(GeneratedSecrets) if f.default is None}
    return {
        f.name: f"<{f.name}>" if f.name in present or f.name not in optional else None for f in fields(GeneratedSecrets)
    }


def file_sources(
    settings: Settings, node: Node, credentials: Credentials, present: Collection[str]
) -> dict[str, tuple[str, ...]]:
    """`node`'s secret files, each with the generated secrets (GeneratedSecrets fields) it is made from.

    Known before the secrets are: the files are made with a distinct stand-in for each secret, and each file's
    sources are the stand-ins found in it. So each file can be made as soon as its own secrets are known.
    `present`: the optional GeneratedSecrets fields this node has.
    """
    stand_ins = _stand_ins(present)
    files = secret_files(settings, node, credentials, GeneratedSecrets(**stand_ins))  # type: ignore[arg-type]
    return {
        name: tuple(source for source, value in stand_ins.items() if value is not None and value in content)
        for name, content in files.items()
    }


def secret_file(
    settings: Settings,
    node: Node,
    credentials: Credentials,
    name: str,
    present: Collection[str],
    sources: Mapping[str, str | None],
) -> str:
    """The content of `node`'s secret file `name`, from the generated secrets it is made from (file_sources);
    `present` as for file_sources."""
    generated = GeneratedSecrets(**{**_stand_ins(present), **sources})  # type: ignore[arg-type]
    return secret_files(settings, node, credentials, generated)[name]
