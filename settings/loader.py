"""Turn a stack's raw configuration into validated Settings and Credentials, or one error naming every problem.

The input is what the Pulumi engine hands a program: a map of full config keys ("ephemeros:nodes") to strings,
objects and arrays being JSON text, plus the set of keys that were stored as secrets.
"""

from __future__ import annotations

import copy
import difflib
import json
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from base.problems import Problems
from settings.credentials import Credentials, credential_keys, is_set, parse_credentials
from settings.model import Settings
from settings.rules import cluster_problems, cluster_warnings

NAMESPACE = "ephemeros"


class SettingsError(Problems):
    """Stack configuration that cannot be used; the message lists every problem, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the stack configuration has {count} problem(s)", problems)


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    credentials: Credentials
    warnings: tuple[str, ...]


def setting_keys() -> dict[str, str]:
    """Every top-level key a stack may set (without namespace), with its description."""
    keys = {
        field.alias or name: field.description or _model_doc(field.annotation)
        for name, field in Settings.model_fields.items()
    }
    keys.update(credential_keys())
    return keys


def load_settings(raw: Mapping[str, str], secret_keys: Collection[str]) -> LoadedSettings:
    """Validate raw config; raises SettingsError naming each bad key, what is wrong and what to do."""
    prefix = f"{NAMESPACE}:"
    own = {k[len(prefix) :]: v for k, v in raw.items() if k.startswith(prefix)}
    secret = {k[len(prefix) :] for k in secret_keys if k.startswith(prefix)}
    known = setting_keys()
    credentials_keys = credential_keys().keys()
    problems: list[str] = []

    for key in sorted(own.keys() - known.keys()):
        problems.append(_unknown_key(key, known))
    for key in sorted(k for k in credentials_keys & own.keys() - secret if is_set(own[k])):
        problems.append(
            f"{prefix}{key} holds a credential but is stored in plain text: remove it with "
            f"`pulumi config rm {key}` and set it again with `pulumi config set --secret {key} <value>`"
        )

    credentials, credential_problems = parse_credentials({k: own[k] for k in credentials_keys & own.keys()})
    problems += [f"{prefix}{key} {message}" for key, message in credential_problems]
    invalid = [(key,) for key, _ in credential_problems]  # each is reported once, here

    document = {k: _decode(v) for k, v in own.items() if k in known and k not in credentials_keys}
    settings, errors = _validate(document)
    if errors:
        deeper = [tuple(e["loc"]) for e in errors]
        problems += [
            _describe(e, document)
            for e in errors
            # A list whose entries failed also counts as too short; the entries' own messages say more.
            if not (
                e["type"] == "too_short"
                and any(len(d) > len(e["loc"]) and d[: len(e["loc"])] == e["loc"] for d in deeper)
            )
        ]
        invalid += deeper
        settings = _without_invalid(document, deeper)
    if settings is not None:
        # Rules still run when some values are invalid (those left out), so that every problem is listed at once;
        # a rule about a key that is invalid itself, or about its parents, would only repeat it.
        problems += [
            f"{prefix}{p}"
            for p in cluster_problems(settings, credentials)
            if not any(_related(_rule_key(p), loc) for loc in invalid)
        ]
    if problems or settings is None:
        raise SettingsError(problems)
    return LoadedSettings(settings, credentials, tuple(cluster_warnings(settings)))


def _validate(document: Mapping[str, Any]) -> tuple[Settings | None, list[Any]]:
    try:
        return Settings.model_validate(document), []
    except ValidationError as error:
        return None, list(error.errors())


def _without_invalid(document: Mapping[str, Any], invalid: list[tuple[Any, ...]]) -> Settings | None:
    """The settings with each invalid value left out (so its default applies, or its parent goes), if they load."""
    current = copy.deepcopy(dict(document))
    locations = list(invalid)
    for _ in range(8):  # each round leaves out one level more where a required value was missing
        for loc in sorted(locations, key=lambda loc: [str(part).zfill(6) for part in loc], reverse=True):
            _remove(current, loc)
        settings, errors = _validate(current)
        if settings is not None:
            return settings
        # A missing required value cannot be left out: its parent goes instead; at the top, nothing can be done.
        locations = [tuple(e["loc"])[:-1] if e["type"] == "missing" else tuple(e["loc"]) for e in errors]
        if not all(locations):
            return None
    return None


def _remove(document: Any, loc: tuple[Any, ...]) -> None:
    parent = document
    for part in loc[:-1]:
        if (isinstance(parent, dict) and part in parent) or (
            isinstance(parent, list) and isinstance(part, int) and part < len(parent)
        ):
            parent = parent[part]
        else:
            return
    last = loc[-1]
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        del parent[last]


def _rule_key(problem: str) -> tuple[str, ...]:
    """'nodes[1] (node node1).address: ...' -> ('nodes', '1', 'address')."""
    path = problem.split(": ", 1)[0].split(" (node ")[0] + problem.split(": ", 1)[0].partition(")")[2]
    return tuple(part for part in path.replace("[", ".").replace("]", "").split(".") if part)


def _related(key: tuple[str, ...], loc: tuple[Any, ...]) -> bool:
    """Whether a problem about `key` concerns the invalid value at `loc` (the same value, a parent or a child)."""
    parts = tuple(str(part) for part in loc if part != "[key]")
    shorter = min(len(key), len(parts))
    return key[:shorter] == parts[:shorter]


def _decode(value: str) -> Any:
    """Objects and arrays arrive as JSON text; everything else stays a string."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _unknown_key(key: str, known: Mapping[str, str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean {NAMESPACE}:{close[0]}? " if close else ""
    return (
        f"{NAMESPACE}:{key} is not a setting of {NAMESPACE}: {hint}remove it with `pulumi config rm {key}` "
        f"(settings: {', '.join(sorted(known))})"
    )


def _describe(error: Mapping[str, Any], document: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    where = _key_path(loc, document)
    kind = error["type"]
    if kind == "value_error":
        return f"{where}: {error['ctx']['error']}"
    if kind == "extra_forbidden":
        known = sorted(_field_aliases(_model_at(loc[:-1])))
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{where}: is not a setting here{hint}; known settings: {', '.join(known)}"
    if kind == "missing":
        return f"{where}: is required{_field_hint(loc)}"
    if kind == "too_short":
        return f"{where}: needs at least one entry{_field_hint(loc)}"
    got = error.get("input")
    shown = f" (got {got!r})" if isinstance(got, (str, int, float, bool)) else ""
    return f"{where}: {error['msg'].replace('a valid tuple', 'a list')}{shown}"


def _key_path(loc: tuple[Any, ...], document: Mapping[str, Any]) -> str:
    path = f"{NAMESPACE}:{loc[0]}" if loc else NAMESPACE
    for part in loc[1:]:
        if part == "[key]":  # pydantic's marker for a bad dict key; the key itself is the previous part
            continue
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
        nodes = document.get("nodes")
        if isinstance(nodes, list) and loc[1] < len(nodes) and isinstance(nodes[loc[1]], dict):
            hostname = nodes[loc[1]].get("hostname")
            if hostname:
                path += f" (node {hostname})"
    return path


def _field_hint(loc: tuple[Any, ...]) -> str:
    model = _model_at(loc[:-1])
    for name, field in model.model_fields.items() if model else ():
        if (field.alias or name) == loc[-1] and field.description:
            return f": {field.description}"
    return ""


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class whose fields live at `loc` inside Settings."""
    current: Any = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        model = _unwrap_model(current)
        if model is None:
            return None
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return None
        current = field.annotation
    return _unwrap_model(current)


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, tuple, list):
        for arg in typing.get_args(annotation):
            model = _unwrap_model(arg)
            if model is not None:
                return model
    return None


def _field_aliases(model: type[BaseModel] | None) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()] if model else []


def _model_doc(annotation: Any) -> str:
    model = _unwrap_model(annotation)
    return (model.__doc__ or "").strip() if model else ""
