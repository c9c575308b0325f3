"""Cluster: the top-level component, one per stack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from base import node_layout as L
from base.build_layout import BuildDir
from base.hostfiles import sha256_file
from bootmedia.bootloader import BootFiles
from components.cluster_pki import ClusterPki, ClusterPkiArgs
from components.datastore import Datastore, DatastoreArgs
from components.dns import DnsRecords, DnsRecordsArgs
from components.heartbeat import heartbeat_check
from components.node import Node, NodeArgs
from components.secrets import ClusterSecrets, ClusterSecretsArgs
from providers.local_file import LocalFile
from settings.credentials import Credentials
from settings.heartbeat_plan import cluster_check, uses_healthchecks
from settings.model import Settings


@dataclass(frozen=True)
class ClusterArgs:
    settings: Settings
    credentials: Credentials
    boot_files: BootFiles  # checked by bootmedia.bootloader.check_bootloader
    build_dir: BuildDir
    dns_updater: Path | None = None  # checked by the pre-flight checks, when nodes need it
    etcd_rejoin: Path | None = None  # likewise, with embedded etcd


class Cluster(pulumi.ComponentResource):
    """The cluster's secrets, checks and records, and per node its Ignition config, stick image and check."""

    nodes: dict[str, Node]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ephemeros:index:Cluster", name, None, opts)
        settings, credentials = args.settings, args.credentials
        child = pulumi.ResourceOptions(parent=self)
        self.secrets = ClusterSecrets(f"{name}-secrets", ClusterSecretsArgs(settings), child)
        self.pki = ClusterPki(f"{name}-pki", ClusterPkiArgs(settings), child)
        self.datastore: Datastore | None = None
        if settings.datastore.type == "vultr":
            self.datastore = Datastore(f"{name}-datastore", DatastoreArgs(settings, credentials), child)

        cluster_url: pulumi.Output[str] | None = None
        spec = cluster_check(settings)
        if spec is not None and uses_healthchecks(settings):
            cluster_url = heartbeat_check(f"{name}-heartbeat", spec, settings, credentials, child).ping_url

        def publish(suffix: str, program: Path | None, url_path: str) -> str | None:
            """A program nodes download from next to their Ignition configs; its sha256, which they check."""
            if program is None:
                return None
            digest = sha256_file(program)
            LocalFile(
                f"{name}-{suffix}",
                path=str(args.build_dir.ignition / url_path),
                source=program,
                source_sha256=digest,
                mode=0o755,
                opts=child,
            )
            return digest

        dns_updater_sha256 = publish("dns-updater", args.dns_updater, L.DNS_UPDATER_URL_PATH)  # nodes on DHCP
        etcd_rejoin_sha256 = publish("etcd-rejoin", args.etcd_rejoin, L.ETCD_REJOIN_URL_PATH)  # servers with etcd

        self.nodes = {
            node.hostname: Node(
                f"{name}-{node.hostname}",
                NodeArgs(
                    settings,
                    node,
                    credentials,
                    self.secrets.for_node(node.hostname, self.pki.server_ca),
                    args.boot_files,
                    args.build_dir,
                    cluster_heartbeat_url=cluster_url if node.role == "server" else None,
                    dns_updater_sha256=dns_updater_sha256,
                    etcd_rejoin_sha256=etcd_rejoin_sha256,
                    datastore=self.datastore.access if self.datastore is not None else None,
                    pki_files=self.pki.server_files if node.role == "server" else {},
                ),
                child,
            )
            for node in settings.nodes
        }
        if settings.dns is not None and settings.dns.rfc2136 is not None:
            DnsRecords(f"{name}-dns", DnsRecordsArgs(settings, credentials), child)
        self.kubernetes_addons: pulumi.ComponentResource | None = None
        if settings.kubernetes.manage:
            # Imported only here: a stack that does not manage add-ons through Pulumi needs no Kubernetes plugin.
            from components.kubernetes_addons import KubernetesAddons, KubernetesAddonsArgs

            addons = KubernetesAddonsArgs(settings, credentials, self.pki.kubeconfig)
            self.kubernetes_addons = KubernetesAddons(f"{name}-addons", addons, child)
        self.register_outputs({"nodes": self.nodes_output(), "datastore": self.datastore_output()})

    def nodes_output(self) -> dict[str, dict[str, pulumi.Input[str]]]:
        return {hostname: node.summary() for hostname, node in self.nodes.items()}

    def datastore_output(self) -> dict[str, pulumi.Input[Any]] | None:
        """The Vultr datastore's address, port, database, CA certificate and readiness; never its password."""
        return self.datastore.summary if self.datastore is not None else None
