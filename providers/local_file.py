"""LocalFile: a file on the machine that runs Pulumi, with real create/read/update/delete.

Its content is given as text, or as another file to copy (`source`, with its sha256 so that a new source updates
it). `pulumi refresh` notices a file that was deleted or edited by hand, and `pulumi destroy` removes it. Paths
are relative to the project directory, where both the program and its dynamic providers run.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from bootmedia.image import sha256_file


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


def _wanted_sha256(props: dict[str, Any]) -> str:
    if props.get("content") is not None:
        return sha256_of(props["content"].encode())
    return str(props["sourceSha256"])


def _write(props: dict[str, Any]) -> dict[str, Any]:
    if props.get("content") is not None:
        data = props["content"].encode()
    else:
        data = Path(props["source"]).read_bytes()
        if sha256_of(data) != props["sourceSha256"]:
            raise RuntimeError(f"{props['source']} changed after pulumi read it: run pulumi up again")
    write_atomically(Path(props["path"]), data, int(props["mode"]))
    return {"path": props["path"], "mode": int(props["mode"]), "sha256": sha256_of(data)}


class LocalFileProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["path"], outs=_write(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        new = {"path": news["path"], "mode": int(news["mode"]), "sha256": _wanted_sha256(news)}
        changed = [key for key in ("path", "mode", "sha256") if olds.get(key) != new[key]]
        return DiffResult(
            changes=bool(changed),
            replaces=["path"] if "path" in changed else [],
            delete_before_replace=False,
        )

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_write(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = Path(props["path"])
        if not path.is_file():
            return ReadResult(id_=None, outs={})
        return ReadResult(
            id_=id_,
            outs={"path": props["path"], "mode": path.stat().st_mode & 0o7777, "sha256": sha256_file(path)},
        )

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        Path(props["path"]).unlink(missing_ok=True)


class LocalFile(Resource, module="ephemeros", name="LocalFile"):
    """A file at `path` (relative to the project) holding `content`, or a copy of `source`; permission `mode`."""

    path: pulumi.Output[str]
    sha256: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        path: pulumi.Input[str],
        content: pulumi.Input[str] | None = None,
        mode: int = 0o644,
        source: Path | None = None,
        source_sha256: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`source_sha256` saves hashing `source` again when the caller has already done it."""
        if (content is None) == (source is None):
            raise ValueError("give a LocalFile either content or source")
        props: dict[str, Any] = {"path": path, "content": content, "mode": mode, "sha256": None}
        if source is not None:
            props |= {"source": str(source), "sourceSha256": source_sha256 or sha256_file(source)}
        super().__init__(LocalFileProvider(), name, props, opts)
