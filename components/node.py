"""Node: everything ephemeros makes for one machine."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi

from base.build_layout import BuildDir
from bootmedia.boot_script import boot_script, syslinux_config
from bootmedia.bootloader import BootFiles
from bootmedia.secret_files import file_sources, secret_file
from components.datastore import DatastoreAccess
from components.heartbeat import heartbeat_check
from components.secrets import NodeSecrets
from ignition.render import config_digest, node_config
from providers.ignition_file import IgnitionFile
from providers.stick_image import StickImage
from providers.stick_writer import StickWriter
from settings.credentials import Credentials
from settings.heartbeat_plan import node_check, uses_healthchecks
from settings.model import Node as NodeSettings
from settings.model import Settings


@dataclass(frozen=True)
class NodeArgs:
    settings: Settings
    node: NodeSettings
    credentials: Credentials
    secrets: NodeSecrets
    boot_files: BootFiles  # checked by bootmedia.bootloader.check_bootloader
    build_dir: BuildDir
    cluster_heartbeat_url: pulumi.Output[str] | None = None  # servers ping the cluster's check
    dns_updater_sha256: str | None = None
    etcd_rejoin_sha256: str | None = None
    datastore: DatastoreAccess | None = None  # servers reach the Vultr datastore with it
    pki_files: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)  # the cluster's CAs, on servers


def _secret_file(
    settings: Settings,
    node: NodeSettings,
    credentials: Credentials,
    name: str,
    present: set[str],
    sources: tuple[str, ...],
) -> Callable[[list[str | None]], str]:
    def content(values: list[str | None]) -> str:
        return secret_file(settings, node, credentials, name, present, dict(zip(sources, values, strict=True)))

    return content


class Node(pulumi.ComponentResource):
    """One machine: its public Ignition config, heartbeat check, stick image, and optionally the stick written."""

    role: str
    ignition_url: str
    config_digest: str  # what the node reports in its heartbeat once booted from this config
    ignition_file: pulumi.Output[str]
    stick_image: pulumi.Output[str]
    stick_sha256: pulumi.Output[str]

    def __init__(self, name: str, args: NodeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ephemeros:index:Node", name, None, opts)
        settings, node, credentials = args.settings, args.node, args.credentials
        child = pulumi.ResourceOptions(parent=self)
        self.role = node.role
        self.ignition_url = settings.ignition_url(node)

        config = node_config(
            settings,
            node,
            log_export=credentials.log_export_target is not None,
            dns_updater_sha256=args.dns_updater_sha256,
            secret_values=credentials.addon_values.keys(),
            etcd_rejoin_sha256=args.etcd_rejoin_sha256,
        )
        self.config_digest = config_digest(config)
        ignition = IgnitionFile(
            f"{name}-ignition", path=str(args.build_dir.ignition_config(node.hostname)), config=config, opts=child
        )
        self.ignition_file = ignition.path.apply(lambda p: str(Path(p).resolve()))

        heartbeat_url: pulumi.Input[str | None] = credentials.heartbeat_urls.get(node.hostname)
        if uses_healthchecks(settings):
            check = heartbeat_check(f"{name}-heartbeat", node_check(settings, node), settings, credentials, child)
            heartbeat_url = check.ping_url
        generated: dict[str, pulumi.Input[str | None]] = {
            "server_token": args.secrets.server_token,
            "agent_token": args.secrets.agent_token,
            "agent_join_token": args.secrets.agent_join_token,
            "node_password": args.secrets.node_password,
            "heartbeat_url": heartbeat_url,
            "cluster_heartbeat_url": args.cluster_heartbeat_url,
        }
        if args.datastore is not None and node.role == "server":
            generated["datastore_endpoint"] = args.datastore.endpoint
            generated["datastore_ca"] = args.datastore.ca_pem
        present = {field for field, value in generated.items() if value is not None}
        sources = file_sources(settings, node, credentials, present)
        # Each file waits only for its own secrets, so a preview shows which files a change touches.
        files = {
            file: pulumi.Output.all(*(generated[source] for source in needed)).apply(
                _secret_file(settings, node, credentials, file, present, needed)
            )
            for file, needed in sources.items()
        }
        stick = StickImage(
            f"{name}-stick",
            path=str(args.build_dir.stick_image(node.hostname)),
            identity=f"{settings.cluster_name}/{node.hostname}",
            boot_script=boot_script(settings, node),
            syslinux_config=syslinux_config(),
            boot_files=args.boot_files,
            secret_files={**files, **args.pki_files},
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
            "configDigest": self.config_digest,
        }
