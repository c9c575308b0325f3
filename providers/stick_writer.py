"""StickWriter: write a node's image to its stick during `pulumi up`, only where the stack config confirms it.

It writes when created and whenever the image changes, refusing a device that is mounted, not removable, or
holds the running system (see bootmedia/device.py), prints progress, and reads the device back to verify.
Destroying it writes nothing: the stick keeps what it holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from bootmedia.device import write_image


def _write(props: dict[str, Any]) -> dict[str, Any]:
    written = write_image(Path(props["image"]), Path(props["device"]), progress=lambda line: print(line, flush=True))
    if written != props["imageSha256"]:
        raise RuntimeError(f"{props['image']} changed while pulumi was writing it: run pulumi up again")
    return {"device": props["device"], "image": props["image"], "imageSha256": written}


class StickWriterProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["device"], outs=_write(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in ("device", "image", "imageSha256") if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed), replaces=["device"] if "device" in changed else [])

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_write(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=props)  # a stick is not read back on refresh: it may be in its node


class StickWriter(Resource, module="ephemeros", name="StickWriter"):
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
        super().__init__(
            StickWriterProvider(), name, {"device": device, "image": image, "imageSha256": image_sha256}, opts
        )
