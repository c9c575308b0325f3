"""LocalFile: a file on the machine that runs Pulumi, with real create/read/update/delete.

Its content is given as text, or as another file to copy (`source`, with its sha256 so that a new source updates
it; a hard link to it where the two share a file system and its mode, so that every stack serving a program shares
its bytes). `pulumi refresh` notices a file that was deleted or edited by hand, and `pulumi destroy` removes it.
Paths are relative to the project directory, where both the program and its dynamic providers run.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from base.hostfiles import sha256_bytes, sha256_file, write_atomically
from providers.props import DIGESTED, OUTPUT, Props, TypedResource, changed_since_read, diff


@dataclasses.dataclass(frozen=True, kw_only=True)
class FileProps(Props):
    """What every file resource has: where it is, its mode, and (outputs) its sha256 and whether it is intact."""

    REPLACE_ON: ClassVar[Collection[str]] = ("path",)

    path: str
    mode: int
    sha256: str | None = dataclasses.field(default=None, metadata=OUTPUT)
    intact: bool = dataclasses.field(default=True, metadata=OUTPUT)  # False: a refresh found it changed by hand

    def data(self) -> bytes:
        raise NotImplementedError

    def link(self, path: Path) -> str | None:
        """Make `path` a hard link to a file with the wanted bytes and mode, where there is one: their sha256."""
        return None


@dataclasses.dataclass(frozen=True, kw_only=True)
class LocalFileProps(FileProps):
    content: str | None = dataclasses.field(default=None, metadata=DIGESTED)
    source: str | None = None
    source_sha256: str | None = None

    def data(self) -> bytes:
        if self.content is not None:
            return self.content.encode()
        if self.source is None:
            raise ValueError("a LocalFile has content or a source")
        data = Path(self.source).read_bytes()
        if sha256_bytes(data) != self.source_sha256:
            raise changed_since_read(self.source)
        return data

    def link(self, path: Path) -> str | None:
        if self.source is None:
            return None
        source = Path(self.source)
        if source.stat().st_mode & 0o7777 != self.mode or sha256_file(source) != self.source_sha256:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.link")
        temporary.unlink(missing_ok=True)
        try:
            os.link(source, temporary)
        except OSError:  # another file system, or one without hard links
            return None
        os.replace(temporary, path)
        return self.source_sha256


P = TypeVar("P", bound=FileProps)


class FileProvider(ResourceProvider, Generic[P]):
    """Create/read/update/delete of a file whose bytes come from its props."""

    kind: type[P]

    def _write(self, props: dict[str, Any]) -> dict[str, Any]:
        wanted = self.kind.from_props(props)
        digest = wanted.link(Path(wanted.path))
        if digest is None:
            data = wanted.data()
            write_atomically(Path(wanted.path), data, wanted.mode)
            digest = sha256_bytes(data)
        return dataclasses.replace(wanted, sha256=digest, intact=True).to_outputs()

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["path"], outs=self._write(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, self.kind, drifted=olds.get("intact") is False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._write(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = Path(props["path"])
        if not path.is_file():
            return ReadResult(id_=None, outs={})
        actual = sha256_file(path)
        intact = actual == props.get("sha256") and path.stat().st_mode & 0o7777 == int(props["mode"])
        return ReadResult(id_=id_, outs={**props, "intact": intact})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        Path(props["path"]).unlink(missing_ok=True)


class LocalFileProvider(FileProvider[LocalFileProps]):
    kind = LocalFileProps


class LocalFile(TypedResource, module="ephemeros", name="LocalFile"):
    """A file at `path` (relative to the project) holding `content`, or a copy of `source`; permission `mode`."""

    path: pulumi.Output[str]
    sha256: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        path: str,
        mode: int,
        content: pulumi.Input[str] | None = None,
        source: Path | None = None,
        source_sha256: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`source_sha256` saves hashing `source` again when the caller has already done it."""
        if (content is None) == (source is None):
            raise ValueError("give a LocalFile either content or source")
        if source is not None:
            inputs = LocalFileProps.inputs(
                path=path, mode=mode, source=str(source), source_sha256=source_sha256 or sha256_file(source)
            )
        else:
            inputs = LocalFileProps.inputs(path=path, mode=mode, content=content)
        super().__init__(LocalFileProvider(), name, LocalFileProps, inputs, opts)
