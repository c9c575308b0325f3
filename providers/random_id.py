"""RandomId: a random identifier from the operating system's CSPRNG, made once and never changed afterwards.

It is no secret: it names things (the datastore's owner id, which every mark of its Vultr objects holds), so it
stays readable in state. No input changes it; only `pulumi up --replace <urn>` or a new stack makes another.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider

from providers.props import OUTPUT, Props, TypedResource, diff

BYTES = 16


@dataclasses.dataclass(frozen=True, kw_only=True)
class RandomIdProps(Props):
    hex: str | None = dataclasses.field(default=None, metadata=OUTPUT)


class RandomIdProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        made = RandomIdProps(hex=secrets.token_hex(BYTES))
        return CreateResult(id_=str(made.hex), outs=made.to_props())

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, RandomIdProps)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=props)


class RandomId(TypedResource, module="ephemeros", name="RandomId"):
    """A random id of 16 bytes, as 32 hex digits (`hex`)."""

    hex: pulumi.Output[str]

    def __init__(self, name: str, *, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(RandomIdProvider(), name, RandomIdProps, RandomIdProps.inputs(), opts)
