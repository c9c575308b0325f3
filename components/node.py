"""Node: everything ephemeros makes for one machine, as its plan (settings.node_plan) says."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pulumi

from base.build_layout import BuildDir
from bootmedia.boot_script import boot_digest, served_boot_script, stick_boot_script, syslinux_config
from bootmedia.bootloader import BootFiles
from bootmedia.secret_files import Source, StickFile, stick_files
from components.secrets import NodeSecrets
from ignition.render import config_digest, node_config
from providers.ignition_file import IgnitionFile
from providers.stick_image import StickImage
from providers.stick_writer import StickWriter
from settings.credentials import Credentials
from settings.model import Settings
from settings.node_plan import NodePlan

if TYPE_CHECKING:
    from components.datastore import DatastoreAccess


@dataclass(frozen=True)
class NodeArgs:
    settings: Settings
    plan: NodePlan
    credentials: Credentials
    secrets: NodeSecrets
    boot_files: BootFiles  # checked by bootmedia.bootloader.check_bootloader
    build_dir: BuildDir
    cluster_heartbeat_url: pulumi.Output[str] | None = None  # servers ping the cluster's check
    dns_updater_sha256: str | None = None
    etcd_rejoin_sha256: str | None = None
    datastore: DatastoreAccess | None = None  # servers reach the Vultr datastore with it
    pki_files: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)  # the cluster's CAs, on servers
    known_ping_urls: Mapping[str, str] = field(default_factory=dict)  # heartbeat checks the API has (stack.services)


def _made(file: StickFile, generated: Mapping[Source, pulumi.Input[str] | None]) -> pulumi.Input[str]:
    """A stick file, made as soon as the secrets it is made from are (and only those: a preview then shows only the
    files that a change touches)."""
    if not file.sources:
        return file.content({})
    values = pulumi.Output.all(*(generated[source] for source in file.sources))
    return values.apply(lambda made: file.content(dict(zip(file.sources, made, strict=True))))


class Node(pulumi.ComponentResource):
    """One machine: its public Ignition config and boot script, heartbeat check, stick image, and optionally the
    stick written. `summary` is its entry in the stack's `nodes` output."""

    ignition_file: pulumi.Output[str]  # absolute paths on this machine
    stick_image: pulumi.Output[str]
    summary: dict[str, pulumi.Input[str]]

    def __init__(self, name: str, args: NodeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ephemeros:index:Node", name, None, opts)
        settings, plan, node, build = args.settings, args.plan, args.plan.node, args.build_dir
        child = pulumi.ResourceOptions(parent=self)
        on_stick = stick_files(settings, plan, args.credentials)
        config = node_config(
            settings,
            plan,
            dns_updater_sha256=args.dns_updater_sha256,
            etcd_rejoin_sha256=args.etcd_rejoin_sha256,
            stick_files=[*on_stick, *args.pki_files],
        )
        served = served_boot_script(settings, node)
        ignition = IgnitionFile(
            f"{name}-ignition",
            path=str(build.ignition_config(node.hostname)),
            config=config,
            boot_script=served,
            boot_script_path=str(build.boot_script(node.hostname)),
            opts=child,
        )
        stick = self._stick(name, args, on_stick, child)
        self.ignition_file = ignition.path.apply(lambda p: str(Path(p).resolve()))
        self.stick_image = stick.path.apply(lambda p: str(Path(p).resolve()))
        self.summary = {
            "role": node.role,
            "ignitionFile": self.ignition_file,
            "ignitionUrl": settings.ignition_url(node),
            "stickImage": self.stick_image,
            "stickSha256": stick.sha256,
            "configDigest": config_digest(config),  # what the node reports in its heartbeat once booted from it
            "bootScriptUrl": settings.boot_script_url(node),
            "bootDigest": boot_digest(served),  # likewise, for the boot script (Flatcar, kernel arguments)
            "flatcarVersion": settings.flatcar.version,  # "current": whichever is current when it boots
            "k3sVersion": settings.k3s.version,
        }
        self.register_outputs(self.summary)

    def _stick(
        self, name: str, args: NodeArgs, on_stick: Mapping[str, StickFile], child: pulumi.ResourceOptions
    ) -> StickImage:
        """The node's stick image, made of its secrets, and written to its stick when the stack names a device."""
        settings, node = args.settings, args.plan.node
        generated = self._generated(name, args, child)
        files = {file: _made(made, generated) for file, made in on_stick.items()}
        stick = StickImage(
            f"{name}-stick",
            path=str(args.build_dir.stick_image(node.hostname)),
            identity=f"{settings.cluster_name}/{node.hostname}",
            boot_script=stick_boot_script(settings, node),
            syslinux_config=syslinux_config(),
            boot_files=args.boot_files,
            secret_files={**files, **args.pki_files},
            opts=child,
        )
        if node.stick is not None:
            StickWriter(
                f"{name}-stick-writer",
                device=node.stick.device,
                image=stick.path,
                image_sha256=stick.sha256,
                opts=child,
            )
        return stick

    def _generated(
        self, name: str, args: NodeArgs, child: pulumi.ResourceOptions
    ) -> dict[Source, pulumi.Input[str] | None]:
        """The secrets Pulumi makes that this node's stick files are made from (None: the node has none)."""
        plan, secrets = args.plan, args.secrets
        heartbeat: pulumi.Input[str] | None = args.credentials.heartbeat_urls.get(plan.node.hostname)
        if plan.heartbeat_check is not None:
            from components.heartbeat import heartbeat_check  # see components.cluster: only when used

            check = heartbeat_check(
                f"{name}-heartbeat", plan.heartbeat_check, args.settings, args.credentials, child, args.known_ping_urls
            )
            heartbeat = check.ping_url
        return {
            "server_token": secrets.server_token,
            "agent_token": secrets.agent_token,
            "agent_join_token": secrets.agent_join_token,
            "node_password": secrets.node_password,
            "heartbeat_url": heartbeat,
            "cluster_heartbeat_url": args.cluster_heartbeat_url,
            "datastore_endpoint": args.datastore.endpoint if args.datastore is not None else None,
            "datastore_ca": args.datastore.ca_pem if args.datastore is not None else None,
        }
