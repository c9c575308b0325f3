"""StickImage: a node's boot stick image file, rebuilt only when what it is made of changes.

Its inputs (boot script, boot programs by path and sha256, and the secret files) are its triggers: any change,
a rotated secret included, rebuilds it. Each secret file is a secret input, so Pulumi stores it encrypted and
`pulumi preview --diff` names the file that changed without showing it. `pulumi refresh` notices an image deleted
or changed by hand; `pulumi destroy` removes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from base.hostfiles import sha256_file
from bootmedia.bootloader import BootFiles
from bootmedia.image import ImageSpec, build_image
from providers.props import DIGESTED, OUTPUT, SECRET_VALUES, Props, TypedResource, changed_since_read, diff

# Raise to rebuild every image when the way images are built changes.
BUILDER_VERSION = 2


@dataclasses.dataclass(frozen=True, kw_only=True)
class StickImageProps(Props):
    REPLACE_ON = ("path",)

    path: str
    identity: str
    boot_script: str = dataclasses.field(metadata=DIGESTED)
    syslinux_config: str = dataclasses.field(metadata=DIGESTED)
    boot_files: dict[str, str]  # key of BootFiles.paths() -> path
    boot_files_sha256: dict[str, str]
    secret_files: dict[str, str] = dataclasses.field(repr=False, metadata={**SECRET_VALUES, **DIGESTED})
    builder_version: int = BUILDER_VERSION
    sha256: str | None = dataclasses.field(default=None, metadata=OUTPUT)
    size: int | None = dataclasses.field(default=None, metadata=OUTPUT)
    intact: bool = dataclasses.field(default=True, metadata=OUTPUT)  # False: a refresh found it changed by hand

    def boot_file_set(self) -> BootFiles:
        for key, path in self.boot_files.items():
            if sha256_file(Path(path)) != self.boot_files_sha256[key]:
                raise changed_since_read(path)
        paths = {key: Path(path) for key, path in self.boot_files.items()}
        return BootFiles(
            ipxe_efi=paths["ipxeEfi"],
            ipxe_lkrn=paths["ipxeLkrn"],
            gptmbr=paths["gptmbr"],
            ldlinux_c32=paths["ldlinuxC32"],
            sha256=self.boot_files_sha256,
        )


def _build(props: dict[str, Any]) -> dict[str, Any]:
    wanted = StickImageProps.from_props(props)
    spec = ImageSpec(
        identity=wanted.identity,
        boot_script=wanted.boot_script,
        syslinux_config=wanted.syslinux_config,
        boot_files=wanted.boot_file_set(),
        secret_files=wanted.secret_files,
    )
    path = Path(wanted.path)
    digest = build_image(path, spec)
    return dataclasses.replace(wanted, sha256=digest, size=path.stat().st_size, intact=True).to_outputs()


class StickImageProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["path"], outs=_build(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, StickImageProps, drifted=olds.get("intact") is False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_build(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = Path(props["path"])
        if not path.is_file():
            return ReadResult(id_=None, outs={})
        return ReadResult(id_=id_, outs={**props, "intact": sha256_file(path) == props.get("sha256")})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        Path(props["path"]).unlink(missing_ok=True)


class StickImage(TypedResource, module="ephemeros", name="StickImage"):
    """A node's stick image at `path` (relative to the project), mode 0600, built from checked `boot_files`."""

    path: pulumi.Output[str]
    sha256: pulumi.Output[str]
    size: pulumi.Output[int]

    def __init__(
        self,
        name: str,
        *,
        path: str,
        identity: str,
        boot_script: str,
        syslinux_config: str,
        boot_files: BootFiles,
        secret_files: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = StickImageProps.inputs(
            path=path,
            identity=identity,
            boot_script=boot_script,
            syslinux_config=syslinux_config,
            boot_files={key: str(value) for key, value in boot_files.paths().items()},
            boot_files_sha256=dict(boot_files.sha256),
            secret_files=dict(secret_files),
            builder_version=BUILDER_VERSION,
        )
        super().__init__(StickImageProvider(), name, StickImageProps, inputs, opts)
