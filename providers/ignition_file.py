"""IgnitionFile: a node's public files, to be served at ignitionBaseUrl: its Ignition config and, beside it, the boot
script its stick chains (the Flatcar version, images and kernel arguments). One resource for both keeps a node's
served files together, and each `pulumi up` one resource per node lighter.

Its input is the config's readable form (ignition.render.NodeConfig: files by path with their text, units by
name), so `pulumi preview --diff` shows the line of a unit or file that changed rather than a data: URL; the
provider writes Ignition's JSON form. Refresh and destroy work as for LocalFile, for both files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import ReadResult, UpdateResult

from base.hostfiles import sha256_bytes, sha256_file, write_atomically
from ignition.render import NodeConfig, to_ignition, to_json
from providers.local_file import FileProps, FileProvider
from providers.props import DIGESTED, OUTPUT, TypedResource

MODE = 0o644  # public


@dataclasses.dataclass(frozen=True, kw_only=True)
class IgnitionFileProps(FileProps):
    config: dict[str, Any] = dataclasses.field(metadata=DIGESTED)
    boot_script: str = dataclasses.field(default="", metadata=DIGESTED)
    boot_script_path: str = ""  # "": no boot script
    boot_script_sha256: str | None = dataclasses.field(default=None, metadata=OUTPUT)

    def data(self) -> bytes:
        config: NodeConfig = self.config  # type: ignore[assignment]  # a NodeConfig, back from Pulumi as a dict
        return to_json(to_ignition(config)).encode()


class IgnitionFileProvider(FileProvider[IgnitionFileProps]):
    kind = IgnitionFileProps

    def _write(self, props: dict[str, Any]) -> dict[str, Any]:
        outs = super()._write(props)
        wanted = IgnitionFileProps.from_props(props)
        if wanted.boot_script_path:
            script = wanted.boot_script.encode()
            write_atomically(Path(wanted.boot_script_path), script, MODE)
            outs["bootScriptSha256"] = sha256_bytes(script)
        return outs

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Both files written anew; a boot script that moved (or that a config from before boot scripts lacked) is
        written where it goes now, and the old one removed. Never a replacement: a new resource at the same path
        would be followed by the old one's delete, which would remove the new file."""
        outs = self._write(news)
        moved = olds.get("bootScriptPath")
        if moved and moved != news.get("bootScriptPath"):
            Path(moved).unlink(missing_ok=True)
        return UpdateResult(outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        read = super().read(id_, props)
        script = props.get("bootScriptPath")
        if read.id is None or read.outs is None or not script:
            return read
        path = Path(script)
        intact = path.is_file() and sha256_file(path) == props.get("bootScriptSha256")
        return ReadResult(id_=read.id, outs={**read.outs, "intact": read.outs["intact"] and intact})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        super().delete(_id, props)
        if props.get("bootScriptPath"):
            Path(props["bootScriptPath"]).unlink(missing_ok=True)


class IgnitionFile(TypedResource, module="ephemeros", name="IgnitionFile"):
    """The Ignition config `config` (readable form) as a file at `path`, and the boot script `boot_script` at
    `boot_script_path`, relative to the project, both mode 0644."""

    path: pulumi.Output[str]
    sha256: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        path: str,
        config: NodeConfig,
        boot_script: str,
        boot_script_path: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = IgnitionFileProps.inputs(
            path=path, mode=MODE, config=dict(config), boot_script=boot_script, boot_script_path=boot_script_path
        )
        super().__init__(IgnitionFileProvider(), name, IgnitionFileProps, inputs, opts)
