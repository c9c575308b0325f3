"""RandomSecret: a random string from the operating system's CSPRNG, kept in state as a secret.

It is generated once and then stays the same across `pulumi up`s. It changes only when its `generation` or
`length` input changes, or on `pulumi up --replace <urn>`.

(The pulumi-random provider would do this job, but its plugin cannot be built or downloaded where ephemeros is
developed and tested; see README, "Why dynamic providers".)
"""

from __future__ import annotations

import dataclasses
import secrets
import string
import uuid
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider

from providers.props import SECRET_OUTPUT, Props, TypedResource, diff

# Letters and digits only: k3s tokens and node passwords are split on ':' and end up in env files.
ALPHABET = string.ascii_letters + string.digits


def random_string(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


@dataclasses.dataclass(frozen=True, kw_only=True)
class RandomSecretProps(Props):
    REPLACE_ON = ("length", "generation")

    length: int
    generation: int = 0
    result: str | None = dataclasses.field(default=None, repr=False, metadata=SECRET_OUTPUT)


class RandomSecretProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        wanted = RandomSecretProps.from_props(props)
        made = dataclasses.replace(wanted, result=random_string(wanted.length))
        return CreateResult(id_=uuid.uuid4().hex, outs=made.to_props())

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, RandomSecretProps)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=props)


class RandomSecret(TypedResource, module="ephemeros", name="RandomSecret"):
    """A random alphanumeric secret of `length` characters; bump `generation` to rotate it."""

    result: pulumi.Output[str]

    def __init__(
        self, name: str, *, length: int, generation: int = 0, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        inputs = RandomSecretProps.inputs(length=length, generation=generation)
        super().__init__(RandomSecretProvider(), name, RandomSecretProps, inputs, opts)
