"""IgnitionFile: a node's public Ignition config, written as a file to be served at its ignitionUrl.

Its input is the config's readable form (ignition.render.NodeConfig: files by path with their text, units by
name), so `pulumi preview --diff` shows the line of a unit or file that changed rather than a data: URL; the
provider writes Ignition's JSON form. Refresh and destroy work as for LocalFile.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi

from ignition.render import NodeConfig, to_ignition, to_json
from providers.local_file import FileProps, FileProvider
from providers.props import TypedResource


@dataclasses.dataclass(frozen=True, kw_only=True)
class IgnitionFileProps(FileProps):
    config: dict[str, Any]

    def data(self) -> bytes:
        config: NodeConfig = self.config  # type: ignore[assignment]  # a NodeConfig, back from Pulumi as a dict
        return to_json(to_ignition(config)).encode()


class IgnitionFileProvider(FileProvider[IgnitionFileProps]):
    kind = IgnitionFileProps


class IgnitionFile(TypedResource, module="ephemeros", name="IgnitionFile"):
    """The Ignition config `config` (readable form) as a file at `path`, relative to the project, mode 0644."""

    path: pulumi.Output[str]
    sha256: pulumi.Output[str]

    def __init__(self, name: str, *, path: str, config: NodeConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        inputs = IgnitionFileProps.inputs(path=path, mode=0o644, config=dict(config))
        super().__init__(IgnitionFileProvider(), name, IgnitionFileProps, inputs, opts)
