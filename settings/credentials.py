"""Credentials: the stack settings that must be set with `pulumi config set --secret`.

They reach nodes only on their sticks. Checks here never put a credential's value into a message.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from settings.registries import RegistryAuth, registry_host
from settings.types import host_port, http_url


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty: set it, or remove it with pulumi config rm")
    return value


def _datastore_endpoint(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise ValueError("is not a PostgreSQL URL: write postgres://user:password@host:5432/database")
    return value


def _log_export_target(value: str) -> str:
    """host:port, the host a DNS name: the nodes' ncat --ssl-verify matches the endpoint's certificate against the
    DNS names it holds (or its common name), never against an IP address, so an address never connects."""
    host = host_port(value).rpartition(":")[0]
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return value
    raise ValueError(
        "names its host by an IP address, which the nodes cannot verify the endpoint's certificate against: "
        "write the host by its DNS name (the one in its certificate), like logs.example.com:12345"
    )


def _tsig_secret(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError("is not base64: copy the secret from the key file made by tsig-keygen") from None
    return value


def _json_map(value: Any) -> Any:
    """Maps arrive from the engine as JSON text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _heartbeat_urls(urls: dict[str, str]) -> dict[str, str]:
    for hostname, url in urls.items():
        try:
            http_url(url)
        except ValueError:
            raise ValueError(f"the URL for {hostname!r} is not an http(s) URL") from None
    return urls


def _registry_hosts(auth: dict[str, RegistryAuth]) -> dict[str, RegistryAuth]:
    for host in auth:
        try:
            registry_host(host)
        except ValueError:
            raise ValueError(f"{host!r} is not a registry host: key each entry by host[:port]") from None
    return {host.lower(): value for host, value in auth.items()}


Text = Annotated[str, AfterValidator(_text)]
PostgresUrl = Annotated[Text, AfterValidator(_datastore_endpoint)]
LogTarget = Annotated[Text, AfterValidator(_log_export_target)]
TsigSecret = Annotated[Text, AfterValidator(_tsig_secret)]
UrlMap = Annotated[dict[str, str], BeforeValidator(_json_map), AfterValidator(_heartbeat_urls)]
RegistryAuthMap = Annotated[dict[str, RegistryAuth], BeforeValidator(_json_map), AfterValidator(_registry_hosts)]
MAP_HINTS = {  # what a map credential must look like, said when it does not
    "heartbeatUrls": "must be a map of hostname to URL: pulumi config set --secret --path 'heartbeatUrls.node0' <URL>",
    "registryAuth": "must be a map of a registry host to its credentials, one form each: pulumi config set --secret "
    "--path 'registryAuth[\"mirror.lan:5000\"].username' <user> (and .password), or .auth, or .identityToken",
    "addonValues": "must be a map of a chart's name (addons.charts[].name) to the YAML text of its secret values: "
    "pulumi config set --secret --path 'addonValues.<name>' \"$(cat values.yaml)\"",
}


class Credentials(BaseModel):
    """Credential values, or None where unset. The repr names which are set, never their values."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, hide_input_in_errors=True
    )

    datastore_endpoint: PostgresUrl | None = Field(
        default=None, description="PostgreSQL URL for datastore.type postgres: postgres://user:password@host:5432/k3s"
    )
    log_export_target: LogTarget | None = Field(
        default=None,
        description="host:port of a TLS log endpoint (e.g. Papertrail), its host by DNS name, that every node sends "
        "its journal to",
    )
    healthchecks_api_key: Text | None = Field(
        default=None, description="read-write API key of the healthchecks project, for heartbeat.provider healthchecks"
    )
    heartbeat_urls: UrlMap = Field(
        default_factory=dict, description="map of hostname to that node's ping URL, for heartbeat.provider urls"
    )
    dns_tsig_secret: TsigSecret | None = Field(default=None, description="base64 TSIG secret for dns.rfc2136 updates")
    namecheap_ddns_password: Text | None = Field(
        default=None, description="Namecheap dynamic DNS password of the domain, for dns.namecheap"
    )
    addon_values: Annotated[dict[str, str], BeforeValidator(_json_map)] = Field(
        default_factory=dict, description="map of addons.charts[].name to YAML of that chart's secret values"
    )
    registry_auth: RegistryAuthMap = Field(
        default_factory=dict,
        description="map of a registry host (host[:port] of a mirror endpoint, or of a registry pulled from) to "
        "its credentials: username and password, auth, or identityToken",
    )
    vultr_api_key: Text | None = Field(
        default=None, description="Vultr API key, for datastore.type vultr (its access control must allow this machine)"
    )
    dumps_access_key_id: Text | None = Field(
        default=None, description="access key id for the datastore.dumps bucket (B2: the application key's keyID)"
    )
    dumps_secret_access_key: Text | None = Field(
        default=None, description="secret access key for the datastore.dumps bucket (B2: the applicationKey)"
    )

    def __repr__(self) -> str:
        present = [name for name in type(self).model_fields if getattr(self, name)]
        return f"Credentials(set={present})"

    __str__ = __repr__


def credential_keys() -> dict[str, str]:
    """Config key -> description of every credential."""
    return {field.alias or name: field.description or "" for name, field in Credentials.model_fields.items()}


def is_set(value: Any) -> bool:
    """Pulumi.yaml gives each credential an empty default; empty means not set."""
    return value is not None and value not in ("", "{}", {})


def parse_credentials(raw: Mapping[str, Any]) -> tuple[Credentials, list[tuple[str, str]]]:
    """Build Credentials from raw values by config key; problems come back as (key, message) pairs.

    A bad credential is left out (and reported), so that the rest can still be checked.
    """
    values = {key: value for key, value in raw.items() if is_set(value)}
    problems: list[tuple[str, str]] = []
    try:
        return Credentials.model_validate(values), problems
    except ValidationError as error:
        for problem in error.errors():
            key = str(problem["loc"][0])
            if problem["type"] == "value_error":
                message = str(problem["ctx"]["error"])
            elif key in MAP_HINTS:
                message = MAP_HINTS[key]
            else:
                message = "is not a text value: set it with pulumi config set --secret"
            if (key, message) not in problems:
                problems.append((key, message))
            values.pop(key, None)
    return Credentials.model_validate(values), problems
