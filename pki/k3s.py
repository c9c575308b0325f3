"""The k3s cluster's PKI as k3s's own contrib/util/generate-custom-ca-certs.sh makes it, and what k3s derives from
it: the CA hash in its secure join token, and an admin kubeconfig.

A root CA (RSA 4096, 7300 days) signs an intermediate CA (RSA 4096, 3700 days), which signs the five CAs k3s reads
from /var/lib/rancher/k3s/server/tls (EC P-256, 3700 days): server-ca, client-ca, request-header-ca, etcd/peer-ca
and etcd/server-ca. Each CA file k3s reads is the chain, leaf CA first, then the intermediate and the root; the
root's and the intermediate's keys never leave the program. service.key is an RSA 2048 key.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final, Literal

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

from base.node_layout import ca_stem
from pki.x509 import CertificateSpec, KeyKind

ROOT_DAYS: Final = 7300
CA_DAYS: Final = 3700
ADMIN_DAYS: Final = 365  # k3s's own leaf certificates last as long
ADMIN_RENEW_DAYS: Final = 90  # `pulumi up` this close to its end makes a new one (k3s renews its own as close)
ROOT_KEY: Final[KeyKind] = "rsa-4096"
INTERMEDIATE_KEY: Final[KeyKind] = "rsa-4096"
LEAF_CA_KEY: Final[KeyKind] = "ec-p256"
SERVICE_KEY: Final[KeyKind] = "rsa-2048"
CLIENT_KEY: Final[KeyKind] = "ec-p256"
TOKEN_PREFIX: Final = "K10"  # noqa: S105 -- the format's prefix, no secret


def _name(cluster: str, stem: str, generation: int) -> str:
    """k3s's CA names are <product>-<type>-ca@<timestamp>; ours carry the cluster and the CA's generation instead,
    so that a name is stable for as long as the CA is."""
    return f"k3s-{stem}@ephemeros-{cluster}-{generation}"


def root_spec(cluster: str, generation: int) -> CertificateSpec:
    return CertificateSpec(_name(cluster, "root-ca", generation), ca=True, days=ROOT_DAYS)


def intermediate_spec(cluster: str, generation: int) -> CertificateSpec:
    return CertificateSpec(_name(cluster, "intermediate-ca", generation), ca=True, days=CA_DAYS)


def leaf_ca_spec(kind: str, cluster: str, generation: int) -> CertificateSpec:
    return CertificateSpec(_name(cluster, ca_stem(kind), generation), ca=True, days=CA_DAYS)


def admin_spec() -> CertificateSpec:
    """k3s's own admin: CN system:admin in group system:masters, a client certificate signed by client-ca."""
    return CertificateSpec("system:admin", organization="system:masters", usages=("client",), days=ADMIN_DAYS)


def etcd_client_spec(cluster: str) -> CertificateSpec:
    """A client of the embedded etcd (signed by etcd/server-ca), for a server's rejoin before k3s starts."""
    return CertificateSpec(f"ephemeros-etcd-rejoin-{cluster}", usages=("client",), days=CA_DAYS)


def ca_hash(bundle: str) -> str:
    """The CA hash of k3s's secure token, as pkg/clientaccess/token.go's hashCA computes it.

    One certificate: the sha256 of the file's bytes. More: the sha256 of the DER of the root that the first
    certificate's chain (through the others) leads to; the file's bytes again if no chain verifies.
    """
    data = bundle.encode()
    certificates = x509.load_pem_x509_certificates(data)
    if len(certificates) > 1:
        root = _verified_root(certificates)
        if root is not None:
            data = root.public_bytes(Encoding.DER)
    return hashlib.sha256(data).hexdigest()


def _key_ids(certificate: x509.Certificate) -> tuple[bytes | None, bytes | None]:
    """(authority key id, subject key id), each None when absent."""
    extensions = certificate.extensions
    try:
        authority = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        authority = None
    try:
        subject: bytes | None = extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        subject = None
    return authority, subject


def _verified_root(certificates: list[x509.Certificate]) -> x509.Certificate | None:
    """The root (no authority key id, or its own) that the first certificate chains to through the others."""
    roots: list[x509.Certificate] = []
    intermediates: list[x509.Certificate] = []
    for certificate in certificates[1:]:
        authority, subject = _key_ids(certificate)
        (roots if authority is None or authority == subject else intermediates).append(certificate)
    current = certificates[0]
    for _ in range(len(certificates)):
        for issuer in roots + intermediates:
            if issuer.subject != current.issuer:
                continue
            try:
                current.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                continue
            if issuer in roots:
                return issuer
            current = issuer
            break
        else:
            return None
    return None


def secure_token(ca_bundle: str, user: Literal["server", "node"], password: str) -> str:
    """K10<ca hash>::<user>:<password>: a token with which a joining node checks the server's CA ("server" joins
    servers, "node" agents)."""
    return f"{TOKEN_PREFIX}{ca_hash(ca_bundle)}::{user}:{password}"


def kubeconfig(cluster: str, server_url: str, server_ca: str, client_certificate: str, client_key: str) -> str:
    """An admin kubeconfig: trusts the cluster's server CA (its chain), logs in with a client certificate."""

    def data(pem: str) -> str:
        return base64.b64encode(pem.encode()).decode()

    user = f"{cluster}-admin"
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": cluster, "cluster": {"server": server_url, "certificate-authority-data": data(server_ca)}}
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": data(client_certificate), "client-key-data": data(client_key)},
            }
        ],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
    }
    return yaml.safe_dump(document, sort_keys=False)
