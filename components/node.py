"""Node: everything ephemeros makes for one machine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from components.secrets import ClusterSecrets
from ignition.render import render_node_config, to_json
from providers.local_file import LocalFile
from settings.credentials import Credentials
from settings.model import Node as NodeSettings
from settings.model import Settings


@dataclass(frozen=True)
class NodeArgs:
    settings: Settings
    node: NodeSettings
    credentials: Credentials
    secrets: ClusterSecrets
    build_dir: Path  # relative to the project directory, e.g. build/dev


class Node(pulumi.ComponentResource):
    """One machine: its public Ignition config (and, as ephemeros grows, its stick, checks and records)."""

    role: str
    ignition_file: pulumi.Output[str]
    ignition_url: str

    def __init__(self, name: str, args: NodeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ephemeros:index:Node", name, None, opts)
        settings, node = args.settings, args.node
        self.role = node.role
        self.ignition_url = settings.ignition_url(node)
        ignition = LocalFile(
            f"{name}-ignition",
            path=str(args.build_dir / "ignition" / f"{node.hostname}.ign"),
            content=to_json(render_node_config(settings, node, args.credentials)),
            mode=0o644,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ignition_file = ignition.path.apply(lambda p: str(Path(p).resolve()))
        self.register_outputs({"role": self.role, "ignitionFile": self.ignition_file, "ignitionUrl": self.ignition_url})

    def summary(self) -> dict[str, pulumi.Input[str]]:
        """This node's entry in the stack's `nodes` output."""
        return {"role": self.role, "ignitionFile": self.ignition_file, "ignitionUrl": self.ignition_url}
