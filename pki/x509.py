"""Keys and X.509 certificates (the `cryptography` library): what a CA or a leaf certificate is made of, in one
place. No Pulumi and no I/O; keys come from the OS's CSPRNG."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyKind = Literal["rsa-4096", "rsa-2048", "ec-p256"]
Usage = Literal["server", "client"]
CLOCK_SKEW = datetime.timedelta(minutes=5)  # not_before this far back, for machines whose clocks are a little behind


def new_key(kind: KeyKind) -> str:
    """A new private key, PEM: RSA in PKCS#1 ("BEGIN RSA PRIVATE KEY", what k3s writes), EC in SEC1."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "ec-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(kind.split("-")[1]))
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


def load_key(pem: str) -> CertificateIssuerPrivateKeyTypes:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("only RSA and EC keys are used here")
    return key


@dataclass(frozen=True)
class CertificateSpec:
    """What a certificate says; `ca` ones may sign others (path_length: how many CAs may stand below)."""

    common_name: str
    organization: str | None = None
    ca: bool = False
    path_length: int | None = None
    days: int = 3650
    usages: tuple[Usage, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Issuer:
    certificate_pem: str
    key_pem: str


def certificate(
    spec: CertificateSpec, key_pem: str, issuer: Issuer | None, *, now: datetime.datetime | None = None
) -> str:
    """The certificate for `key_pem` that `spec` describes, signed by `issuer` (self-signed without one), PEM.

    CAs get basicConstraints critical CA:true and keyUsage critical digitalSignature, keyEncipherment, keyCertSign
    (as k3s's generate-custom-ca-certs.sh makes them); leaves get digitalSignature and keyEncipherment with the
    asked extended key usages. Both get subject and authority key identifiers.
    """
    key = load_key(key_pem)
    now = now or datetime.datetime.now(datetime.UTC)
    names = [x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name)]
    if spec.organization:
        names.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, spec.organization))
    subject = x509.Name(names)
    if issuer is None:
        issuer_name, signer, issuer_public = subject, key, key.public_key()
    else:
        issuer_certificate = x509.load_pem_x509_certificate(issuer.certificate_pem.encode())
        issuer_name, signer = issuer_certificate.subject, load_key(issuer.key_pem)
        issuer_public = issuer_certificate.public_key()  # type: ignore[assignment]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=spec.days))
        .add_extension(x509.BasicConstraints(ca=spec.ca, path_length=spec.path_length if spec.ca else None), True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=spec.ca,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), False)
    )
    usages = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}
    if spec.usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usages[u] for u in spec.usages]), False)
    alternative_names: list[x509.GeneralName] = [x509.DNSName(name) for name in spec.dns_names]
    alternative_names += [x509.IPAddress(ipaddress.ip_address(address)) for address in spec.ip_addresses]
    if alternative_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names), False)
    return builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def chain(*pems: str) -> str:
    """Certificates one after the other, leaf first: a CA file that holds a chain."""
    return "".join(pem if pem.endswith("\n") else pem + "\n" for pem in pems)


def certificates(pem: str) -> Sequence[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode())


def expires_within(pem: str, days: int) -> bool:
    """Whether the (first) certificate in `pem` ends less than `days` days from now."""
    end = certificates(pem)[0].not_valid_after_utc
    return end - datetime.datetime.now(datetime.UTC) < datetime.timedelta(days=days)
