"""StickImage: a node's boot stick image file, rebuilt only when what it is made of changes.

Its inputs (boot script, boot programs by path and sha256, and the secret files) are its triggers: any change,
a rotated secret included, rebuilds it. The secret files are a secret input, so Pulumi stores them encrypted;
the provider keeps only a digest of all inputs, itself a secret output, to tell when to rebuild. `pulumi refresh`
notices an image deleted or changed by hand; `pulumi destroy` removes it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from bootmedia.bootloader import BootFiles
from bootmedia.image import ImageSpec, build_image, sha256_file

# Raise to rebuild every image when the way images are built changes.
BUILDER_VERSION = 1
INPUTS = ("path", "identity", "bootScript", "syslinuxConfig", "bootFiles", "secretFiles", "builderVersion")


def inputs_digest(props: dict[str, Any]) -> str:
    document = json.dumps({key: props.get(key) for key in INPUTS}, sort_keys=True)
    return hashlib.sha256(document.encode()).hexdigest()


def _build(props: dict[str, Any]) -> dict[str, Any]:
    files = props["bootFiles"]
    for key, path in files["paths"].items():
        if sha256_file(Path(path)) != files["sha256"][key]:
            raise RuntimeError(f"{path} changed after pulumi read it: run pulumi up again")
    spec = ImageSpec(
        identity=props["identity"],
        boot_script=props["bootScript"],
        syslinux_config=props["syslinuxConfig"],
        boot_files=BootFiles(**{key: Path(path) for key, path in files["paths"].items()}),
        secret_files=props["secretFiles"],
    )
    path = Path(props["path"])
    digest = build_image(path, spec)
    return {"path": props["path"], "sha256": digest, "size": path.stat().st_size, "inputsDigest": inputs_digest(props)}


class StickImageProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["path"], outs=_build(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        moved = olds.get("path") != news["path"]
        try:
            changed = moved or olds.get("inputsDigest") != inputs_digest(news)
        except TypeError:  # an input is not known yet (a secret being replaced, in a preview): it will change
            changed = True
        return DiffResult(changes=changed, replaces=["path"] if moved else [], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_build(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = Path(props["path"])
        if not path.is_file():
            return ReadResult(id_=None, outs={})
        actual = sha256_file(path)
        if actual != props.get("sha256"):
            # Changed by hand: forget what it was built from, so that the next `pulumi up` rebuilds it.
            return ReadResult(id_=id_, outs={**props, "sha256": actual, "inputsDigest": "changed outside pulumi"})
        return ReadResult(id_=id_, outs=props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        Path(props["path"]).unlink(missing_ok=True)


def boot_files_input(files: BootFiles) -> dict[str, dict[str, str]]:
    """Boot programs by path, with their sha256 so that a new iPXE or syslinux rebuilds the images."""
    paths = {key: str(value) for key, value in vars(files).items()}
    return {"paths": paths, "sha256": {key: sha256_file(Path(path)) for key, path in paths.items()}}


class StickImage(Resource, module="ephemeros", name="StickImage"):
    """A node's stick image at `path` (relative to the project), mode 0600; `boot_files` from boot_files_input."""

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
        boot_files: dict[str, dict[str, str]],
        secret_files: pulumi.Input[dict[str, str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            StickImageProvider(),
            name,
            {
                "path": path,
                "identity": identity,
                "bootScript": boot_script,
                "syslinuxConfig": syslinux_config,
                "bootFiles": boot_files,
                "secretFiles": pulumi.Output.secret(secret_files),
                "builderVersion": BUILDER_VERSION,
                "sha256": None,
                "size": None,
                "inputsDigest": None,
            },
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["inputsDigest"])),
        )
