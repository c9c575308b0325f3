"""What ephemeros makes for one node: which features it runs, hence which units its Ignition holds and which files its
stick carries. Decided once, from the settings and which credentials are set (never their values). Pure.

The Ignition (ignition.render) and the stick's secret files (bootmedia.secret_files) both follow the plan, so a
unit and the stick file it reads cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from settings.credentials import Credentials
from settings.dns_plan import RuntimeName, runtime_names
from settings.heartbeat_plan import CheckSpec, cluster_check, node_check, uses_healthchecks
from settings.model import Node, Settings


@dataclass(frozen=True)
class NodePlan:
    node: Node
    heartbeat: Literal["healthchecks", "urls"] | None  # a heartbeat timer; its ping URL made here, or the user's
    heartbeat_check: CheckSpec | None  # the check made through the healthchecks API
    cluster_heartbeat: bool  # a server that also pings the cluster's check
    datastore: Literal["given", "vultr"] | None  # a server's external datastore: datastoreEndpoint, or made here
    log_export: bool  # the journal sent to logExportTarget
    dns_names: tuple[RuntimeName, ...]  # the DNS names the node keeps current itself
    etcd_rejoin: bool  # a server with embedded etcd rejoins the others at every boot
    addon_secret_values: tuple[str, ...]  # charts whose secret values a server carries and applies
    registry_auth_hosts: tuple[str, ...]  # registries whose credentials the node carries (registryAuth)

    @property
    def server(self) -> bool:
        return self.node.role == "server"


def node_plan(settings: Settings, node: Node, credentials: Credentials) -> NodePlan:
    server = node.role == "server"
    heartbeat = settings.heartbeat.provider if settings.heartbeat is not None else None
    datastore: Literal["given", "vultr"] | None = None
    if server and settings.datastore.external:
        datastore = "vultr" if settings.datastore.type == "vultr" else "given"
    return NodePlan(
        node=node,
        heartbeat=heartbeat,
        heartbeat_check=node_check(settings, node) if uses_healthchecks(settings) else None,
        cluster_heartbeat=server and uses_healthchecks(settings) and cluster_check(settings) is not None,
        datastore=datastore,
        log_export=credentials.log_export_target is not None,
        dns_names=tuple(runtime_names(settings, node)),
        etcd_rejoin=server and settings.datastore.type == "etcd",
        addon_secret_values=tuple(
            chart.name
            for chart in settings.addons.charts
            if server and chart.name in credentials.addon_values and not settings.kubernetes.manage
        ),
        registry_auth_hosts=tuple(sorted(credentials.registry_auth)),
    )
