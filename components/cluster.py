"""Cluster: the top-level component, one per stack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from bootmedia.bootloader import BootFiles
from components.node import Node, NodeArgs
from components.secrets import ClusterSecrets, ClusterSecretsArgs
from providers.stick_image import boot_files_input
from settings.credentials import Credentials
from settings.model import Settings


@dataclass(frozen=True)
class ClusterArgs:
    settings: Settings
    credentials: Credentials
    boot_files: BootFiles  # checked by bootmedia.bootloader.check_bootloader
    build_dir: Path


class Cluster(pulumi.ComponentResource):
    """The cluster's secrets, and per node its Ignition config and stick image."""

    nodes: dict[str, Node]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ephemeros:index:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.secrets = ClusterSecrets(f"{name}-secrets", ClusterSecretsArgs(args.settings), child)
        boot_files = boot_files_input(args.boot_files)
        self.nodes = {
            node.hostname: Node(
                f"{name}-{node.hostname}",
                NodeArgs(args.settings, node, args.credentials, self.secrets, boot_files, args.build_dir),
                child,
            )
            for node in args.settings.nodes
        }
        self.register_outputs({"nodes": self.nodes_output()})

    def nodes_output(self) -> dict[str, dict[str, pulumi.Input[str]]]:
        return {hostname: node.summary() for hostname, node in self.nodes.items()}
