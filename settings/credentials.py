"""Credentials: the stack settings that must be set with `pulumi config set --secret`.

They reach nodes only on their sticks. Checks here never put a credential's value into a message.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from settings.types import host_port, http_url


@dataclass(frozen=True)
class Credentials:
    """Credential values, or None where unset. The repr names which are set, never their values."""

    datastore_endpoint: str | None = field(default=None, repr=False)
    log_export_target: str | None = field(default=None, repr=False)
    healthchecks_api_key: str | None = field(default=None, repr=False)
    heartbeat_urls: Mapping[str, str] = field(default_factory=dict, repr=False)
    dns_tsig_secret: str | None = field(default=None, repr=False)
    namecheap_ddns_password: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        present = [f.name for f in fields(self) if getattr(self, f.name)]
        return f"Credentials(set={present})"


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty: set it, or remove it with pulumi config rm")
    return value


def _datastore_endpoint(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise ValueError("is not a PostgreSQL URL: write postgres://user:password@host:5432/database")
    return value


def _tsig_secret(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError("is not base64: copy the secret from the key file made by tsig-keygen") from None
    return value


def _heartbeat_urls(value: str) -> dict[str, str]:
    try:
        urls: Any = json.loads(value)
    except ValueError:
        urls = None
    if not isinstance(urls, dict) or not all(isinstance(v, str) for v in urls.values()):
        raise ValueError(
            "must be a map of hostname to URL: pulumi config set --secret --path 'heartbeatUrls.node0' <URL>"
        )
    for hostname, url in urls.items():
        try:
            http_url(url)
        except ValueError:
            raise ValueError(f"the URL for {hostname!r} is not an http(s) URL") from None
    return urls


class CredentialKey(NamedTuple):
    attribute: str
    description: str
    parse: Callable[[str], Any]


# Config key -> how it is read. Pulumi.yaml declares each of these with `secret: true`.
CREDENTIAL_KEYS: dict[str, CredentialKey] = {
    "datastoreEndpoint": CredentialKey(
        "datastore_endpoint",
        "PostgreSQL URL the k3s servers keep state in: postgres://user:password@host:5432/k3s",
        _datastore_endpoint,
    ),
    "logExportTarget": CredentialKey(
        "log_export_target", "host:port of a TLS endpoint that takes journal lines (e.g. Papertrail)", host_port
    ),
    "healthchecksApiKey": CredentialKey(
        "healthchecks_api_key", "read-write API key of the healthchecks project for the nodes' checks", _text
    ),
    "heartbeatUrls": CredentialKey(
        "heartbeat_urls", "map of hostname to that node's ping URL, for heartbeat.provider 'urls'", _heartbeat_urls
    ),
    "dnsTsigSecret": CredentialKey("dns_tsig_secret", "base64 TSIG secret for RFC 2136 DNS updates", _tsig_secret),
    "namecheapDdnsPassword": CredentialKey(
        "namecheap_ddns_password", "Namecheap dynamic DNS password of the domain", _text
    ),
}


def is_set(value: str | None) -> bool:
    """Pulumi.yaml gives each optional credential an empty default; empty means not set."""
    return value is not None and value not in ("", "{}")


def parse_credentials(raw: Mapping[str, str]) -> tuple[Credentials, list[tuple[str, str]]]:
    """Build Credentials from raw values by config key; problems come back as (key, message) pairs."""
    problems: list[tuple[str, str]] = []
    values: dict[str, Any] = {}
    for key, spec in CREDENTIAL_KEYS.items():
        if not is_set(raw.get(key)):
            continue
        try:
            values[spec.attribute] = spec.parse(raw[key])
        except ValueError as error:
            problems.append((key, str(error)))
    return Credentials(**values), problems
