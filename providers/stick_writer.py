"""StickWriter: write a node's image to its stick during `pulumi up`, only where the stack config confirms it.

It writes when created and whenever the image changes, refusing any device but an erasable removable disk (see
bootmedia/device.py), prints progress, and reads the device back to verify. Destroying it writes nothing: the
stick keeps what it holds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from bootmedia.device import System, write_image
from providers.props import Props, ProviderError, TypedResource, diff


@dataclasses.dataclass(frozen=True, kw_only=True)
class StickWriterProps(Props):
    REPLACE_ON = ("device",)

    device: str
    image: str
    image_sha256: str


class StickWriterProvider(ResourceProvider):
    def __init__(self, system: System | None = None) -> None:
        """`system`: where to read the machine's view of its devices (default: /sys and /proc)."""
        super().__init__()
        self.system = system

    def _write(self, props: dict[str, Any]) -> dict[str, Any]:
        wanted = StickWriterProps.from_props(props)
        written = write_image(
            Path(wanted.image), Path(wanted.device), lambda line: print(line, flush=True), self.system
        )
        if written != wanted.image_sha256:
            raise ProviderError(f"{wanted.image} changed while pulumi was writing it: run pulumi up again")
        return wanted.to_props()

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["device"], outs=self._write(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, StickWriterProps)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._write(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=props)  # a stick is not read back on refresh: it may be in its node


class StickWriter(TypedResource, module="ephemeros", name="StickWriter"):
    """Writes `image` (whose sha256 is `image_sha256`) to `device`."""

    def __init__(
        self,
        name: str,
        *,
        device: str,
        image: pulumi.Input[str],
        image_sha256: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = StickWriterProps.inputs(device=device, image=image, image_sha256=image_sha256)
        super().__init__(StickWriterProvider(), name, StickWriterProps, inputs, opts)
