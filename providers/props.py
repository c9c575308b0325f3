"""Typed properties for dynamic providers: each resource kind declares its inputs and outputs once, as a dataclass.

Pulumi hands a dynamic provider plain dicts with camelCase keys (numbers as floats, lists as lists); `from_props`
turns one into the typed class and `to_props` back. Field metadata says which values are secret (`SECRET`: Pulumi
keeps them encrypted in state, and the resource wraps them as secrets, so callers never do), which are outputs
the provider fills in (`OUTPUT`), and which large inputs the provider needs only to make the object (`DIGESTED`):
its outputs (`to_outputs`) keep only their digest, which is all a diff needs, so the state does not hold them twice.
`diff` is the one diff rule every provider uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any, ClassVar, Self

import pulumi
from pulumi.dynamic import DiffResult, Resource, ResourceProvider
from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN

SECRET: Mapping[str, bool] = {"secret": True}
OUTPUT: Mapping[str, bool] = {"output": True}
SECRET_OUTPUT: Mapping[str, bool] = {"secret": True, "output": True}
# A map whose values are each secret while its keys are not: a diff shows which entry changed, never a value.
SECRET_VALUES: Mapping[str, bool] = {"secret": True, "per_value": True}
DIGESTED: Mapping[str, bool] = {"digested": True}
DIGEST_PREFIX = "sha256:"


def digest_of(value: Any) -> str:
    """A digested field's value in the outputs: the digest of its canonical JSON (a digest is kept as it is)."""
    if isinstance(value, str) and value.startswith(DIGEST_PREFIX):
        return value
    # A value not known yet (during a preview) is written as such, so that it digests differently: it counts as changed.
    text = json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), default=lambda _: "<not known yet>")
    return DIGEST_PREFIX + hashlib.sha256(text.encode()).hexdigest()


class ProviderError(RuntimeError):
    """A provider could not do what was asked; the message names the object and says what to do. Never a secret."""


def changed_since_read(path: object) -> ProviderError:
    """A file the program hashed changed before the provider used it."""
    return ProviderError(f"{path} changed after pulumi read it: run pulumi up again")


def is_unknown(value: Any) -> bool:
    """Whether a value (or anything in it) is not known yet, as during a preview. The engine hands a dynamic
    provider's check and diff `pulumi.output.Unknown` objects; older paths use the string rpc.UNKNOWN."""
    if isinstance(value, Unknown) or (isinstance(value, str) and value == UNKNOWN):
        return True
    if isinstance(value, list | tuple):
        return any(is_unknown(item) for item in value)
    if isinstance(value, Mapping):
        return any(is_unknown(item) for item in value.values())
    return False


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The class's resolved field types (they are strings under `from __future__ import annotations`)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _coerce(kind: Any, value: Any) -> Any:
    """A value from Pulumi as the declared type: floats to ints, lists to tuples, dicts to nested Props."""
    if value is None or is_unknown(value):
        return value
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):  # Optional[X]
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        return _coerce(options[0], value) if len(options) == 1 else value
    if kind is int and isinstance(value, float | int) and not isinstance(value, bool):
        return int(value)
    if origin is tuple and isinstance(value, list | tuple):
        item = typing.get_args(kind)[0]
        return tuple(_coerce(item, v) for v in value)
    if origin is dict and isinstance(value, Mapping):
        item = typing.get_args(kind)[1]
        return {k: _coerce(item, v) for k, v in value.items()}
    if isinstance(kind, type) and issubclass(kind, Props) and isinstance(value, Mapping):
        return kind.from_props(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Props):
        return value.to_props()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class Props:
    """Base of every provider's props; subclasses are frozen keyword-only dataclasses."""

    REPLACE_ON: ClassVar[Collection[str]] = ()  # fields whose change replaces the resource (snake_case)

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> Self:
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            key = camel(field.name)
            if key in props:
                values[field.name] = _coerce(hints[field.name], props[key])
            elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ProviderError(f"{cls.__name__} lacks {key!r}: the state was written by an older ephemeros")
        return cls(**values)

    def to_props(self) -> dict[str, Any]:
        return {camel(field.name): _plain(getattr(self, field.name)) for field in dataclasses.fields(self)}

    def to_outputs(self) -> dict[str, Any]:
        """What the provider returns as the resource's outputs: its props, each DIGESTED field as its digest."""
        props = self.to_props()
        for field in dataclasses.fields(self):
            if field.metadata.get("digested"):
                props[camel(field.name)] = digest_of(props[camel(field.name)])
        return props

    @classmethod
    def secret_outputs(cls) -> list[str]:
        return [camel(f.name) for f in dataclasses.fields(cls) if f.metadata.get("secret")]

    @classmethod
    def inputs(cls, **values: Any) -> dict[str, Any]:
        """A resource's input dict from keyword arguments (Inputs allowed), secrets wrapped, outputs declared."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = values.keys() - fields.keys()
        if unknown:
            raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")
        props: dict[str, Any] = {}
        for name, field in fields.items():
            if field.metadata.get("output") and name not in values:
                props[camel(name)] = None
                continue
            if name not in values:
                if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                    raise TypeError(f"{cls.__name__} needs {name}")
                continue
            value = _plain(values[name])
            if field.metadata.get("per_value"):
                value = {key: pulumi.Output.secret(item) for key, item in value.items()}
            elif field.metadata.get("secret"):
                value = pulumi.Output.secret(value)
            props[camel(name)] = value
        return props


class TypedResource(Resource):
    """A dynamic resource whose props are a Props class: its secret outputs are secret in state (the engine's
    additional_secret_outputs) and in the program too, whatever runs it (Pulumi's mocks do not apply the former)."""

    def __init__(
        self,
        provider: ResourceProvider,
        name: str,
        kind: type[Props],
        inputs: dict[str, Any],
        opts: pulumi.ResourceOptions | None,
    ) -> None:
        secret = kind.secret_outputs()
        options = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=secret))
        super().__init__(provider, name, inputs, options)
        for key in secret:
            setattr(self, key, pulumi.Output.secret(getattr(self, key)))

    def output(self, field: str) -> pulumi.Output[Any]:
        """The output of a props field, by its snake_case name."""
        value: pulumi.Output[Any] = getattr(self, camel(field))
        return value


def diff(
    olds: Mapping[str, Any],
    news: Mapping[str, Any],
    kind: type[Props],
    *,
    ignore: Collection[str] = (),
    drifted: bool = False,
    delete_before_replace: bool = False,
) -> DiffResult:
    """Compare the old state with the new inputs, field by field, as `kind` declares them.

    Outputs and `ignore`d fields are not compared; a field in `kind.REPLACE_ON` that changed replaces the resource.
    A value not known yet (during a preview) counts as changed. `drifted`: the object no longer is what the state
    says (a refresh found it changed by hand), so it is updated even when no input changed.
    """
    hints = _hints(kind)
    changed: list[str] = []
    for field in dataclasses.fields(kind):
        if field.metadata.get("output") or field.name in ignore:
            continue
        key = camel(field.name)
        new = _coerce(hints[field.name], news.get(key))
        old = _coerce(hints[field.name], olds.get(key))
        if is_unknown(new):
            changed.append(field.name)
        elif field.metadata.get("digested"):
            if digest_of(new) != digest_of(old):
                changed.append(field.name)
        elif _plain(new) != _plain(old):
            changed.append(field.name)
    replaces = [camel(name) for name in changed if name in kind.REPLACE_ON]
    return DiffResult(changes=bool(changed) or drifted, replaces=replaces, delete_before_replace=delete_before_replace)
