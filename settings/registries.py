"""Image registries: k3s's registries.yaml (mirrors with their endpoints and rewrites, TLS and credentials per host),
and k3s's embedded registry mirror (Spegel), so that a rebooted node pulls its images from its peers or a LAN mirror.

k3s reads /etc/rancher/k3s/registries.yaml (docs.k3s.io/installation/private-registry; its types are rancher/wharfie's
pkg/registries): `mirrors.<registry>` with `endpoint` (a list of URLs) and `rewrite` (regular expression to
replacement), and `configs.<host>` with `auth` (username and password, auth, or identity_token) and `tls` (ca_file,
cert_file, key_file, insecure_skip_verify). The file is public but for `auth`: so each host's `configs` entry is
either in the public part (the Ignition: ignition.registries) or, when the host has credentials, wholly in the
stick's part (bootmedia.secret_files); base.registries_file says how the two parts join on the node.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from cryptography import x509
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from base.node_layout import registry_ca_file
from settings.model_base import Model
from settings.types import HttpUrl, dns_name_ok

_HOST_PORT = re.compile(r"^(?P<host>[^:/\s]+|\[[0-9a-fA-F:]+\])(:(?P<port>\d{1,5}))?$")


def registry_host(value: str) -> str:
    """A registry or endpoint host as containerd names it: host[:port], lower case."""
    match = _HOST_PORT.match(value)
    host = match["host"] if match else ""
    port = int(match["port"]) if match and match["port"] else 1
    if not match or not 0 < port < 65536 or not (host.startswith("[") or dns_name_ok(host.lower())):
        raise ValueError(f"{value!r} is not a registry host: write host[:port], e.g. docker.io or mirror.lan:5000")
    return value.lower()


def _registry(value: str) -> str:
    return value if value == "*" else registry_host(value)


def _rewrites(rewrites: dict[str, str]) -> dict[str, str]:
    for pattern in rewrites:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"rewrite {pattern!r} is not a regular expression ({error})") from None
    return rewrites


def _ca_cert(value: str) -> str:
    try:
        x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        raise ValueError("is not a PEM certificate: paste the CA's certificate, BEGIN and END lines included") from None
    if "PRIVATE KEY" in value:
        raise ValueError("holds a private key, and it is public (it goes into the Ignition): give the certificate only")
    return value


RegistryName = Annotated[str, AfterValidator(_registry)]
RegistryHost = Annotated[str, AfterValidator(registry_host)]


class Mirror(Model):
    """Where a registry's images are pulled from: its endpoints in order, then the registry itself."""

    registry: RegistryName = Field(description="the registry mirrored, e.g. docker.io, or * for every registry")
    endpoints: tuple[HttpUrl, ...] = Field(
        default=(), description="mirror URLs tried in order, e.g. https://mirror.lan:5000; none: peers only"
    )
    rewrite: Annotated[dict[str, str], AfterValidator(_rewrites)] = Field(
        default_factory=dict,
        description="image name rewrites at the endpoints: regular expression to replacement, e.g. "
        "'^rancher/(.*)': 'mirrors/rancher/$1'",
    )


class RegistryConfig(Model):
    """How to reach one registry host (a mirror endpoint's or a registry's): its TLS. Its credentials are the
    secret registryAuth."""

    host: RegistryHost = Field(description="the host[:port], as in the endpoint's or the image's name")
    ca_cert: Annotated[str, AfterValidator(_ca_cert)] | None = Field(
        default=None, description="PEM certificate of the CA that signed the host's certificate (public)"
    )
    insecure_skip_verify: bool = Field(
        default=False, description="true: do not check the host's certificate (anyone on the path can serve images)"
    )


class Registries(Model):
    """Image registries for k3s's containerd, so that a rebooted node pulls from its peers or a LAN mirror."""

    embedded_mirror: bool = Field(
        default=False,
        description="k3s's embedded registry mirror (Spegel): nodes share the images of the mirrored registries "
        "with each other (TCP 5001 and 6443 between nodes)",
    )
    mirrors: tuple[Mirror, ...] = Field(default=(), description="registries to mirror, with their endpoints")
    configs: tuple[RegistryConfig, ...] = Field(default=(), description="TLS settings per registry host")
    disable_default_endpoint: bool = Field(
        default=False,
        description="true: never fall back to a mirrored registry itself, only to its endpoints and peers (air gap)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Registries:
        problems = []
        for what, names in (
            ("mirrors[].registry", [m.registry for m in self.mirrors]),
            ("configs[].host", [c.host for c in self.configs]),
        ):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                problems.append(f"{what} {', '.join(repeated)} is given more than once: give each once")
        if self.embedded_mirror and not self.mirrors:
            problems.append(
                "embeddedMirror shares the images of the registries listed in mirrors only, and none is: list "
                "each (an entry with no endpoints is enough), e.g. registry docker.io, or * for every registry"
            )
        if self.disable_default_endpoint and not self.mirrors:
            problems.append("disableDefaultEndpoint applies to mirrored registries only, and none is: list them")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def configured(self) -> bool:
        return bool(self.mirrors or self.configs or self.embedded_mirror)


class RegistryAuth(BaseModel):
    """A registry host's credentials, one of the forms containerd takes. Never shown in messages."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, hide_input_in_errors=True
    )

    username: str | None = Field(default=None, repr=False)
    password: str | None = Field(default=None, repr=False)
    auth: str | None = Field(default=None, repr=False)  # base64 of username:password
    identity_token: str | None = Field(default=None, repr=False)

    @model_validator(mode="after")
    def _one_form(self) -> RegistryAuth:
        forms = [bool(self.username or self.password), bool(self.auth), bool(self.identity_token)]
        if forms.count(True) != 1 or (forms[0] and not (self.username and self.password)):
            raise ValueError(
                "give one form of credentials per host: username and password, or auth (base64 of "
                "username:password), or identityToken"
            )
        return self

    def entry(self) -> dict[str, str]:
        """The `auth` entry of registries.yaml (wharfie's AuthConfig: identity_token in snake case)."""
        names = {"username": "username", "password": "password", "auth": "auth", "identity_token": "identity_token"}
        return {key: getattr(self, name) for name, key in names.items() if getattr(self, name)}


def tls_entry(registries: Registries, host: str) -> dict[str, Any]:
    """The `tls` of a host's `configs` entry in registries.yaml (rancher/wharfie's TLSConfig), if it has any."""
    config = next((c for c in registries.configs if c.host == host), None)
    tls: dict[str, Any] = {}
    if config is not None and config.ca_cert is not None:
        tls["ca_file"] = registry_ca_file(config.host)
    if config is not None and config.insecure_skip_verify:
        tls["insecure_skip_verify"] = True
    return {"tls": tls} if tls else {}


def stick_entries(registries: Registries, auth: Mapping[str, RegistryAuth]) -> dict[str, dict[str, Any]]:
    """The `configs` entries that go on the stick: those of the hosts with credentials, their TLS included."""
    return {host: {**tls_entry(registries, host), "auth": auth[host].entry()} for host in sorted(auth)}


def registries_warnings(registries: Registries) -> list[str]:
    """Choices that work but let anyone on the network path change what nodes run."""
    warnings = [
        f"registries.mirrors ({mirror.registry}): endpoint {endpoint} is plain http: anyone on the network path can "
        "change the images nodes run; use https, or a mirror on a trusted LAN"
        for mirror in registries.mirrors
        for endpoint in mirror.endpoints
        if endpoint.startswith("http://")
    ]
    warnings += [
        f"registries.configs ({config.host}): insecureSkipVerify is true: nodes do not check who serves them images"
        for config in registries.configs
        if config.insecure_skip_verify
    ]
    return warnings
