"""RandomSecret: a random string from the operating system's CSPRNG, kept in state as a secret.

It is generated once and then stays the same across `pulumi up`s. It changes only when its `generation` or
`length` input changes, or on `pulumi up --replace <urn>`.

(The pulumi-random provider would do this job, but its plugin cannot be built or downloaded where ephemeros is
developed and tested; see README, "Why dynamic providers".)
"""

from __future__ import annotations

import secrets
import string
import uuid
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider

# Letters and digits only: k3s tokens and node passwords are split on ':' and end up in env files.
ALPHABET = string.ascii_letters + string.digits


def random_string(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


class RandomSecretProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        length = int(props["length"])
        return CreateResult(
            id_=uuid.uuid4().hex,
            outs={"length": length, "generation": props["generation"], "result": random_string(length)},
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [key for key in ("length", "generation") if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=False)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=props)


class RandomSecret(Resource, module="ephemeros", name="RandomSecret"):
    """A random alphanumeric secret of `length` characters; bump `generation` to rotate it."""

    result: pulumi.Output[str]

    def __init__(self, name: str, length: int, generation: int = 0, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            RandomSecretProvider(),
            name,
            {"length": length, "generation": generation, "result": None},
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["result"])),
        )
