"""The base of every settings model, and how an optional feature's "off" default is declared."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    """A group of settings; every field has a description, from which Pulumi.yaml and docs/settings.md are made.

    Field names are snake_case here and camelCase in the stack file (`base_url` is `baseUrl`). Every model forbids
    keys it does not know, so a typo is an error instead of a silently ignored setting.
    """

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


def off(value: Any) -> dict[str, Any]:
    """How Pulumi.yaml declares an optional feature's default: a value that the loader reads as absent."""
    return {"off": value}


def empty_is_none(value: Any) -> Any:
    return None if value == "" else value
