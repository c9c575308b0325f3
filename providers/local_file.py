"""LocalFile: a file on the machine that runs Pulumi, with real create/read/update/delete.

`pulumi refresh` notices a file that was deleted or edited by hand, and `pulumi destroy` removes it. Paths are
relative to the project directory, where both the program and its dynamic providers run.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` with `mode` from the first byte on, replacing any old file in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _state(path: str, mode: int, content: str) -> dict[str, Any]:
    return {"path": path, "mode": mode, "sha256": sha256_of(content.encode())}


class LocalFileProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        write_atomically(Path(props["path"]), props["content"].encode(), int(props["mode"]))
        return CreateResult(id_=props["path"], outs=_state(props["path"], int(props["mode"]), props["content"]))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        new = _state(news["path"], int(news["mode"]), news["content"])
        changed = [key for key in ("path", "mode", "sha256") if olds.get(key) != new[key]]
        return DiffResult(
            changes=bool(changed),
            replaces=["path"] if "path" in changed else [],
            delete_before_replace=False,
        )

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        write_atomically(Path(news["path"]), news["content"].encode(), int(news["mode"]))
        return UpdateResult(outs=_state(news["path"], int(news["mode"]), news["content"]))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = Path(props["path"])
        if not path.is_file():
            return ReadResult(id_=None, outs={})
        return ReadResult(
            id_=id_,
            outs={"path": props["path"], "mode": path.stat().st_mode & 0o7777, "sha256": sha256_of(path.read_bytes())},
        )

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        Path(props["path"]).unlink(missing_ok=True)


class LocalFile(Resource, module="ephemeros", name="LocalFile"):
    """A file at `path` (relative to the project) holding `content`, with permission bits `mode`."""

    path: pulumi.Output[str]
    sha256: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        path: pulumi.Input[str],
        content: pulumi.Input[str],
        mode: int = 0o644,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            LocalFileProvider(), name, {"path": path, "content": content, "mode": mode, "sha256": None}, opts
        )
