"""Certificate: an X.509 certificate made once for a key, signed by an issuer (or itself), and kept: stable
across `pulumi up`s, made anew only when what it says, its key or its issuer changes, or (with `renew_before_days`)
when a `pulumi up` comes that close to its end."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from pki.x509 import CertificateSpec, Issuer, Usage, certificate, expires_within
from providers.props import DIGESTED, OUTPUT, SECRET, Props, TypedResource, diff


@dataclasses.dataclass(frozen=True, kw_only=True)
class CertificateProps(Props):
    REPLACE_ON = (
        "key_pem",
        "issuer_certificate_pem",
        "issuer_key_pem",
        "common_name",
        "organization",
        "ca",
        "path_length",
        "days",
        "usages",
        "dns_names",
        "ip_addresses",
    )

    key_pem: str = dataclasses.field(repr=False, metadata={**SECRET, **DIGESTED})
    issuer_certificate_pem: str = dataclasses.field(default="", metadata=DIGESTED)  # "": self-signed
    issuer_key_pem: str = dataclasses.field(default="", repr=False, metadata={**SECRET, **DIGESTED})
    common_name: str
    organization: str = ""
    ca: bool = False
    path_length: int = -1  # -1: none
    days: int
    usages: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    renew_before_days: int = 0  # 0: never renewed by time
    pem: str | None = dataclasses.field(default=None, metadata=OUTPUT)

    def spec(self) -> CertificateSpec:
        usages: tuple[Usage, ...] = tuple(u for u in ("server", "client") if u in self.usages)
        return CertificateSpec(
            common_name=self.common_name,
            organization=self.organization or None,
            ca=self.ca,
            path_length=None if self.path_length < 0 else self.path_length,
            days=self.days,
            usages=usages,
            dns_names=self.dns_names,
            ip_addresses=self.ip_addresses,
        )


class CertificateProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        wanted = CertificateProps.from_props(props)
        issuer = Issuer(wanted.issuer_certificate_pem, wanted.issuer_key_pem) if wanted.issuer_certificate_pem else None
        made = dataclasses.replace(wanted, pem=certificate(wanted.spec(), wanted.key_pem, issuer))
        return CreateResult(id_=uuid.uuid4().hex, outs=made.to_outputs())

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        result = diff(olds, news, CertificateProps)
        renew = news.get("renewBeforeDays")
        if isinstance(renew, int | float) and renew > 0 and olds.get("pem") and expires_within(olds["pem"], int(renew)):
            return DiffResult(changes=True, replaces=[*(result.replaces or []), "pem"])
        return result

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Only the renewal window changed (anything else makes a new certificate): the certificate stays."""
        kept = dataclasses.replace(CertificateProps.from_props(news), pem=CertificateProps.from_props(olds).pem)
        return UpdateResult(outs=kept.to_outputs())

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=props)


class Certificate(TypedResource, module="ephemeros", name="Certificate"):
    """The certificate `spec` describes for the key `key_pem`, signed by `issuer` (None: self-signed); `pem`."""

    pem: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        spec: CertificateSpec,
        key_pem: pulumi.Input[str],
        issuer: tuple[pulumi.Input[str], pulumi.Input[str]] | None = None,  # (certificate PEM, key PEM)
        ip_addresses: pulumi.Input[Sequence[str]] | None = None,  # instead of spec's, when known only later
        renew_before_days: int = 0,  # made anew by a `pulumi up` this close to its end; 0: never
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = CertificateProps.inputs(
            key_pem=key_pem,
            issuer_certificate_pem=issuer[0] if issuer else "",
            issuer_key_pem=issuer[1] if issuer else "",
            common_name=spec.common_name,
            organization=spec.organization or "",
            ca=spec.ca,
            path_length=-1 if spec.path_length is None else spec.path_length,
            days=spec.days,
            usages=spec.usages,
            dns_names=spec.dns_names,
            ip_addresses=spec.ip_addresses if ip_addresses is None else ip_addresses,
            renew_before_days=renew_before_days,
        )
        super().__init__(CertificateProvider(), name, CertificateProps, inputs, opts)
