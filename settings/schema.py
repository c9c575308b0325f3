"""Every setting is declared once, in the models: this makes Pulumi.yaml's `config` block and docs/settings.md.

    python -m settings.schema          (`make generate`) rewrites both; a test fails when either is stale.

Pulumi.yaml declares each top-level key with its type, description and, for an optional key, the default that the
loader reads as "not set" (the engine insists on a default for every key a stack may leave out). Credentials are
described as "(secret)": a declared secret key cannot have a default, so the program enforces their secrecy.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from settings.credentials import Credentials
from settings.model import Settings

PROJECT_FILE = Path(__file__).resolve().parents[1] / "Pulumi.yaml"
REFERENCE_FILE = Path(__file__).resolve().parents[1] / "docs/settings.md"
GENERATED = (
    "# Every setting a stack can have, made from the models in settings/ by `make generate`: edit those, not this.\n"
    '# Keys without a default must be set in Pulumi.<stack>.yaml; optional ones default to "not set". Credentials\n'
    "# are set with `pulumi config set --secret <key> <value>`: the program refuses one stored in plain text.\n"
)
SCALARS: dict[Any, str] = {
    str: "string",
    int: "integer",
    bool: "boolean",
    ipaddress.IPv4Address: "string",
    ipaddress.IPv4Network: "string",
    ipaddress.IPv4Interface: "string",
}


def _strip(annotation: Any) -> Any:
    """The annotation without Annotated[...] and Optional's None."""
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, directly or as the items of a list."""
    annotation = _strip(annotation)
    if typing.get_origin(annotation) in (tuple, list):
        annotation = _strip(typing.get_args(annotation)[0])
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def pulumi_type(annotation: Any) -> dict[str, Any]:
    """The Pulumi.yaml type declaration of a field."""
    annotation = _strip(annotation)
    origin = typing.get_origin(annotation)
    if origin in (tuple, list):
        return {"type": "array", "items": pulumi_type(typing.get_args(annotation)[0])}
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return {"type": "object"}
    if origin is Literal:
        return {"type": "string"}
    if annotation in SCALARS:
        return {"type": SCALARS[annotation]}
    raise TypeError(f"no Pulumi config type for {annotation!r}: extend settings.schema.SCALARS")


def _unset(field: FieldInfo, declared: dict[str, Any]) -> Any:
    """The default Pulumi.yaml gives an optional key: a value the loader reads as not set."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "off" in extra:
        return extra["off"]
    default = field.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):
        return {}
    if default is None:
        return {"string": "", "object": {}, "array": []}[declared["type"]]
    return default


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:].rstrip(".") + "."


def _describe(field: FieldInfo, secret: bool) -> str:
    text = field.description or ""
    model = _model(field.annotation)
    if model is not None:
        text += ": " + ", ".join(f.alias or name for name, f in model.model_fields.items())
    return ("(secret) " if secret else "") + _sentence(text)


def _declarations() -> Iterator[tuple[str, FieldInfo, bool]]:
    for name, field in Settings.model_fields.items():
        yield field.alias or name, field, False
    for name, field in Credentials.model_fields.items():
        yield field.alias or name, field, True


def project_config() -> dict[str, dict[str, Any]]:
    """The `config` block of Pulumi.yaml."""
    config: dict[str, dict[str, Any]] = {}
    for key, field, secret in _declarations():
        declared = pulumi_type(field.annotation)
        entry = {**declared}
        if secret or not field.is_required():
            entry["default"] = _unset(field, declared)
        entry["description"] = _describe(field, secret)
        config[key] = entry
    return config


def pulumi_yaml(current: str) -> str:
    """Pulumi.yaml with its generated part (from the GENERATED comment to the end) made anew."""
    head = current.split(GENERATED.splitlines()[0], 1)[0].rstrip("\n")
    body = yaml.safe_dump({"config": project_config()}, sort_keys=False, width=120, allow_unicode=True)
    return f"{head}\n\n{GENERATED}{body}"


# --- docs/settings.md -------------------------------------------------------------------------------------------


def _doc_type(annotation: Any) -> str:
    annotation = _strip(annotation)
    origin = typing.get_origin(annotation)
    if origin in (tuple, list):
        return f"list of {_doc_type(typing.get_args(annotation)[0])}"
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"map of {_doc_type(key)} to {_doc_type(value)}"
    if origin is Literal:
        return " \\| ".join(f"`{value}`" for value in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f"`{member.value}`" for member in annotation)
    if annotation is Any:
        return "any YAML value"
    return SCALARS.get(annotation, "string")


def _markdown(text: str) -> str:
    """A description as table text: `<` would start an HTML tag, `|` a new column."""
    return text.replace("<", "&lt;").replace("|", "\\|")


def _doc_default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    default = field.get_default(call_default_factory=True)
    if default is None or default in ((), {}, "") or isinstance(default, BaseModel):
        return ""
    return f"`{json.dumps(to_jsonable_python(default))}`"


def _rows(model: type[BaseModel], prefix: str) -> Iterator[str]:
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        text = _markdown(field.description or "")
        yield f"| `{key}` | {_doc_type(field.annotation)} | {_doc_default(field)} | {text} |"
        inner = _model(field.annotation)
        if inner is not None:
            is_list = typing.get_origin(_strip(field.annotation)) in (tuple, list)
            yield from _rows(inner, f"{key}[]." if is_list else f"{key}.")


def reference() -> str:
    """docs/settings.md: every key, nested ones included, with its type, default and description."""
    lines = [
        "# Settings",
        "",
        "Every key of a stack's `config` (namespace `ephemeros:`), made from the models in `settings/` by",
        "`make generate`. Values are validated before any resource is created; a mistake fails `pulumi preview`",
        "naming the key. `pulumi config set --path` sets nested keys, e.g. `pulumi config set --path k3s.version ...`.",
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
        *_rows(Settings, ""),
        "",
        "## Credentials",
        "",
        "Set only with `pulumi config set --secret <key> <value>`; one stored in plain text is refused. They reach",
        "nodes only on their sticks, never the public Ignition, plain state or output.",
        "",
        "| key | type | description |",
        "|---|---|---|",
        *(
            f"| `{field.alias or name}` | {_doc_type(field.annotation)} | {_markdown(field.description or '')} |"
            for name, field in Credentials.model_fields.items()
        ),
        "",
    ]
    return "\n".join(lines)


def generated_files() -> dict[Path, str]:
    return {PROJECT_FILE: pulumi_yaml(PROJECT_FILE.read_text()), REFERENCE_FILE: reference()}


def main() -> None:
    for path, text in generated_files().items():
        path.parent.mkdir(exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
