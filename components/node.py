"""Node: everything ephemeros makes for one machine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from bootmedia.boot_script import boot_script, syslinux_config
from bootmedia.secret_files import GeneratedSecrets, secret_files
from components.build_dir import BuildDir
from components.heartbeat import heartbeat_check, uses_healthchecks
from components.secrets import ClusterSecrets
from ignition.render import render_node_config, to_json
from providers.local_file import LocalFile
from providers.stick_image import StickImage
from providers.stick_writer import StickWriter
from settings.credentials import Credentials
from settings.heartbeat_plan import node_check
from settings.model import Node as NodeSettings
from settings.model import Settings


@dataclass(frozen=True)
class NodeArgs:
    settings: Settings
    node: NodeSettings
    credentials: Credentials
    secrets: ClusterSecrets
    boot_files: dict[str, dict[str, str]]  # from providers.stick_image.boot_files_input
    build_dir: BuildDir
    cluster_heartbeat_url: pulumi.Output[str] | None = None  # servers ping the cluster's check
    dns_updater_sha256: str | None = None


class Node(pulumi.ComponentResource):
    """One machine: its public Ignition config, heartbeat check, stick image, and optionally the stick written."""

    role: str
    ignition_url: str
    ignition_file: pulumi.Output[str]
    stick_image: pulumi.Output[str]
    stick_sha256: pulumi.Output[str]

    def __init__(self, name: str, args: NodeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ephemeros:index:Node", name, None, opts)
        settings, node, credentials = args.settings, args.node, args.credentials
        child = pulumi.ResourceOptions(parent=self)
        self.role = node.role
        self.ignition_url = settings.ignition_url(node)

        ignition = LocalFile(
            f"{name}-ignition",
            path=str(args.build_dir.ignition_config(node.hostname)),
            content=to_json(render_node_config(settings, node, credentials, args.dns_updater_sha256)),
            mode=0o644,
            opts=child,
        )
        self.ignition_file = ignition.path.apply(lambda p: str(Path(p).resolve()))

        heartbeat_url: pulumi.Input[str | None] = credentials.heartbeat_urls.get(node.hostname)
        if uses_healthchecks(settings):
            check = heartbeat_check(f"{name}-heartbeat", node_check(settings, node), settings, credentials, child)
            heartbeat_url = check.ping_url
        files = pulumi.Output.all(
            args.secrets.server_token,
            args.secrets.agent_token,
            args.secrets.node_passwords[node.hostname],
            heartbeat_url,
            args.cluster_heartbeat_url,
        ).apply(lambda values: secret_files(settings, node, credentials, GeneratedSecrets(*values)))
        stick = StickImage(
            f"{name}-stick",
            path=str(args.build_dir.stick_image(node.hostname)),
            identity=f"{settings.cluster_name}/{node.hostname}",
            boot_script=boot_script(settings, node),
            syslinux_config=syslinux_config(),
            boot_files=args.boot_files,
            secret_files=pulumi.Output.secret(files),
            opts=child,
        )
        self.stick_image = stick.path.apply(lambda p: str(Path(p).resolve()))
        self.stick_sha256 = stick.sha256
        if node.stick is not None:
            StickWriter(
                f"{name}-stick-writer",
                device=node.stick.device,
                image=stick.path,
                image_sha256=stick.sha256,
                opts=child,
            )
        self.register_outputs(self.summary())

    def summary(self) -> dict[str, pulumi.Input[str]]:
        """This node's entry in the stack's `nodes` output."""
        return {
            "role": self.role,
            "ignitionFile": self.ignition_file,
            "ignitionUrl": self.ignition_url,
            "stickImage": self.stick_image,
            "stickSha256": self.stick_sha256,
        }
