"""Snippets: the user's own Ignition (spec 3.3) fragments, in YAML, merged into the configs of every node, of a
role's nodes, or of one node (as Typhoon's snippets are). They are public like the rest of the Ignition: anything
that looks like a credential is refused, as secrets belong on the stick.

Checked here: the text is a YAML mapping of Ignition's own sections, without what a diskless node cannot use, and
holds nothing credential-looking. Ignition's schema itself is checked by ignition-validate at preview
(stack/preflight.py); paths and units the program writes itself are refused there too (ignition/snippets.py).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import AfterValidator, Field

from settings.addons import secret_looking
from settings.model_base import Model

SECTIONS = ("ignition", "passwd", "storage", "systemd")
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z0-9_.-]+)\s*[:=]\s*(\S.*)$")
_HEADERS = re.compile(r"^(authorization|proxy-authorization|cookie)$", re.IGNORECASE)
PUBLIC = "snippets are public (they go into the Ignition, which anyone may read); secrets belong on the stick"


def _data_url_text(source: str) -> str | None:
    if not source.startswith("data:"):
        return None
    meta, _, data = source[5:].partition(",")
    try:
        raw = base64.b64decode(data, validate=True) if meta.endswith(";base64") else unquote(data).encode()
        return raw.decode()
    except (binascii.Error, UnicodeDecodeError):
        return None  # compressed or binary contents: nothing to read


def _sources(document: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(where, value) of every entry named source or httpHeaders, at any depth."""
    if isinstance(document, dict):
        for key, value in document.items():
            where = f"{path}.{key}" if path else str(key)
            if key in ("source", "httpHeaders"):
                yield where, value
            yield from _sources(value, where)
    elif isinstance(document, list):
        for i, value in enumerate(document):
            yield from _sources(value, f"{path}[{i}]")


def _references_out(value: Any) -> Any:
    """`value` with every text that names where a secret is (a path, a variable) made empty: not one itself."""
    if isinstance(value, dict):
        return {key: _references_out(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_references_out(item) for item in value]
    if isinstance(value, str) and value.startswith(("/", "$")):
        return ""
    return value


def _text_credentials(text: str) -> list[str]:
    """What looks like a credential in a file's text: a private key, or a credential-looking key's value set, as
    YAML, JSON or key=value lines (env files, INI)."""
    if "PRIVATE KEY-----" in text:
        return ["hold a private key"]
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = None
    if isinstance(parsed, dict | list):
        keys = secret_looking(_references_out(parsed))
    else:
        lines = [match for match in map(_LINE.match, text.splitlines()) if match]
        keys = [k for m in lines for k in secret_looking(_references_out({m[1]: m[2].strip().strip("'\"")}))]
    return [f"set {key}, which looks like a credential" for key in keys]


def credentials_in(document: Any) -> list[str]:
    """Where a snippet holds something credential-looking, each as a short description."""
    sources = list(_sources(document))  # told more precisely below
    found = [f"{w} looks like a credential" for w in secret_looking(document) if w not in {w for w, _ in sources}]
    for where, value in sources:
        if isinstance(value, list):  # httpHeaders
            for header in value:
                if isinstance(header, dict) and _HEADERS.match(str(header.get("name", ""))):
                    found.append(f"{where} sends a {header['name']} header")
            continue
        if not isinstance(value, str):
            continue
        if urlsplit(value).password is not None:
            found.append(f"{where} has a password in its URL")
        text = _data_url_text(value)
        if text is not None:
            found += [f"{where}: its contents {what}" for what in _text_credentials(text)]
    return found


def parse_snippet(text: str) -> dict[str, Any]:
    """The snippet's Ignition fragment; ValueError says what is wrong and what to write."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"is not YAML: {error}") from None
    if not isinstance(document, dict) or not document:
        raise ValueError("is not an Ignition fragment: write a YAML mapping of storage, systemd or passwd entries")
    unknown = sorted(str(key) for key in document if key not in SECTIONS)
    if "kernelArguments" in unknown:
        raise ValueError(
            "sets kernelArguments, which Ignition applies by rewriting the boot disk, and nodes boot from the "
            "network: use flatcar.kernelArgs or nodes[].kernelArgs"
        )
    if unknown:
        raise ValueError(f"has {', '.join(unknown)}, which is not an Ignition section: use {', '.join(SECTIONS)}")
    ignition = document.get("ignition", {})
    if not isinstance(ignition, dict):
        raise ValueError("ignition must be a mapping")
    if ignition.get("version", "3.3.0") != "3.3.0":
        raise ValueError("is written for another Ignition spec: write it for 3.3.0 (or leave ignition.version out)")
    config = ignition.get("config", {})
    if isinstance(config, dict) and config.get("replace"):
        raise ValueError("sets ignition.config.replace, which would throw away the node's config: remove it")
    if isinstance(config, dict) and config.get("merge"):
        raise ValueError(
            "sets ignition.config.merge, which fetches another config at boot that no check at preview reads (it "
            "could write what ephemeros writes, or carry a credential): put its entries in the snippet itself"
        )
    return document


def _snippet(text: str) -> str:
    found = credentials_in(parse_snippet(text))
    if found:
        raise ValueError(f"{found[0]}, and {PUBLIC}: move it to a file on the stick or a Kubernetes Secret")
    return text


Snippet = Annotated[str, AfterValidator(_snippet)]


class Snippets(Model):
    """Ignition 3.3 fragments (YAML) merged into nodes' configs: every node's, then each role's; a node's own
    (nodes[].snippets) come last. Public, like the rest of the Ignition."""

    all: tuple[Snippet, ...] = Field(default=(), description="fragments for every node")
    server: tuple[Snippet, ...] = Field(default=(), description="fragments for the servers")
    agent: tuple[Snippet, ...] = Field(default=(), description="fragments for the agents")
