"""PrivateKey: a key made once from the OS's CSPRNG and kept in state as a secret; a new one only when its kind or
generation changes (or on `pulumi up --replace`)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider

from pki.x509 import KeyKind, new_key
from providers.props import SECRET_OUTPUT, Props, TypedResource, diff


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrivateKeyProps(Props):
    REPLACE_ON = ("kind", "generation")

    kind: str  # a pki.x509.KeyKind
    generation: int = 0
    pem: str | None = dataclasses.field(default=None, repr=False, metadata=SECRET_OUTPUT)


class PrivateKeyProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        wanted = PrivateKeyProps.from_props(props)
        pem = new_key(wanted.kind)  # type: ignore[arg-type]  # checked by the resource's signature
        made = dataclasses.replace(wanted, pem=pem)
        return CreateResult(id_=uuid.uuid4().hex, outs=made.to_props())

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, PrivateKeyProps)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=props)


class PrivateKey(TypedResource, module="ephemeros", name="PrivateKey"):
    """A private key of `kind`; `pem` (secret)."""

    pem: pulumi.Output[str]

    def __init__(
        self, name: str, *, kind: KeyKind, generation: int = 0, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        inputs = PrivateKeyProps.inputs(kind=kind, generation=generation)
        super().__init__(PrivateKeyProvider(), name, PrivateKeyProps, inputs, opts)
