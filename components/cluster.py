"""Cluster: the top-level component, one per stack."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi

from base import node_layout as L
from base.build_layout import BuildDir
from base.hostfiles import sha256_file
from bootmedia.bootloader import BootFiles
from components.cluster_pki import ClusterPki, ClusterPkiArgs
from components.node import Node, NodeArgs
from components.secrets import ClusterSecrets, ClusterSecretsArgs
from providers.local_file import LocalFile
from settings.credentials import Credentials
from settings.heartbeat_plan import cluster_check, uses_healthchecks
from settings.model import Settings
from settings.node_plan import node_plan

if TYPE_CHECKING:
    from components.datastore import Datastore


@dataclass(frozen=True)
class ClusterArgs:
    settings: Settings
    credentials: Credentials
    boot_files: BootFiles  # checked by bootmedia.bootloader.check_bootloader
    build_dir: BuildDir
    dns_updater: Path | None = None  # checked by the pre-flight checks, when nodes need it
    etcd_rejoin: Path | None = None  # likewise, with embedded etcd
    known_ping_urls: Mapping[str, str] = field(default_factory=dict)  # heartbeat checks the API has (stack.services)


def _published(
    name: str, program: Path | None, build_dir: BuildDir, url_path: str, opts: pulumi.ResourceOptions
) -> str | None:
    """A program nodes download from next to their Ignition configs; its sha256, which they check."""
    if program is None:
        return None
    digest = sha256_file(program)
    path = str(build_dir.ignition / url_path)
    LocalFile(name, path=path, source=program, source_sha256=digest, mode=0o755, opts=opts)
    return digest


class Cluster(pulumi.ComponentResource):
    """The cluster's secrets, checks and records, and per node its Ignition config, stick image and check.

    The components of a feature (the datastore, DNS records, heartbeat checks, Kubernetes add-ons) are imported only
    when the stack uses it: their providers' libraries (HTTP, DNS and PostgreSQL clients, the Kubernetes SDK) take
    a good part of a second to load, at every run of the program.
    """

    nodes: dict[str, Node]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ephemeros:index:Cluster", name, None, opts)
        settings, credentials = args.settings, args.credentials
        child = pulumi.ResourceOptions(parent=self)
        self.secrets = ClusterSecrets(f"{name}-secrets", ClusterSecretsArgs(settings), child)
        self.pki = ClusterPki(f"{name}-pki", ClusterPkiArgs(settings), child)
        self.datastore: Datastore | None = None
        if settings.datastore.type == "vultr":
            from components.datastore import Datastore, DatastoreArgs

            datastore = DatastoreArgs(settings, credentials, args.known_ping_urls)
            self.datastore = Datastore(f"{name}-datastore", datastore, child)
        self.nodes = self._nodes(name, args, child)
        if settings.dns is not None and settings.dns.rfc2136 is not None:
            from components.dns import DnsRecords, DnsRecordsArgs

            DnsRecords(f"{name}-dns", DnsRecordsArgs(settings, credentials), child)
        self.kubernetes_addons: pulumi.ComponentResource | None = None
        if settings.kubernetes.manage:
            # Also a stack that does not manage add-ons through Pulumi needs no Kubernetes plugin.
            from components.kubernetes_addons import KubernetesAddons, KubernetesAddonsArgs

            addons = KubernetesAddonsArgs(settings, credentials, self.pki.kubeconfig)
            self.kubernetes_addons = KubernetesAddons(f"{name}-addons", addons, child)
        # The nodes' summaries are the Node components' outputs (and the stack's): here only their names.
        self.register_outputs({"nodes": sorted(self.nodes), "datastore": self.datastore_output()})

    def _nodes(self, name: str, args: ClusterArgs, child: pulumi.ResourceOptions) -> dict[str, Node]:
        settings = args.settings
        cluster_url: pulumi.Output[str] | None = None
        spec = cluster_check(settings)
        if spec is not None and uses_healthchecks(settings):
            from components.heartbeat import heartbeat_check

            check = heartbeat_check(f"{name}-heartbeat", spec, settings, args.credentials, child, args.known_ping_urls)
            cluster_url = check.ping_url
        build = args.build_dir
        dns_updater = _published(f"{name}-dns-updater", args.dns_updater, build, L.DNS_UPDATER_URL_PATH, child)
        etcd_rejoin = _published(f"{name}-etcd-rejoin", args.etcd_rejoin, build, L.ETCD_REJOIN_URL_PATH, child)
        secrets = self.secrets.for_nodes(self.pki.server_ca)
        nodes = {}
        for node in settings.nodes:
            plan = node_plan(settings, node, args.credentials)
            node_args = NodeArgs(
                settings,
                plan,
                args.credentials,
                secrets.for_node(node.hostname),
                args.boot_files,
                args.build_dir,
                cluster_heartbeat_url=cluster_url if plan.cluster_heartbeat else None,
                dns_updater_sha256=dns_updater,
                etcd_rejoin_sha256=etcd_rejoin,
                datastore=self.datastore.access if self.datastore is not None and plan.datastore else None,
                pki_files=self.pki.server_files if plan.server else {},
                known_ping_urls=args.known_ping_urls,
            )
            nodes[node.hostname] = Node(f"{name}-{node.hostname}", node_args, child)
        return nodes

    def nodes_output(self) -> dict[str, dict[str, pulumi.Input[str]]]:
        return {hostname: node.summary for hostname, node in self.nodes.items()}

    def datastore_output(self) -> dict[str, pulumi.Input[Any]] | None:
        """The Vultr datastore's address, port, database, CA certificate and readiness; never its password."""
        return self.datastore.summary if self.datastore is not None else None
