"""The cluster's PKI as the program makes it (through its providers, under Pulumi's mocks), checked against k3s's
own generate-custom-ca-certs.sh and its token rules; the CA hash against pkg/clientaccess/token.go's hashCA."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from base import node_layout as L
from components.cluster_pki import ClusterPki, ClusterPkiArgs
from harness.stack import base_settings, to_raw
from pki import k3s
from pki.x509 import CertificateSpec, Issuer, certificate, chain, new_key
from providers.certificate import CertificateProps, CertificateProvider
from settings import load_settings
from tests.mocks import Recorder, mock_test


def make_pki() -> ClusterPki:
    settings = load_settings(to_raw(base_settings()), set()).settings
    return ClusterPki("lab-pki", ClusterPkiArgs(settings))


def certificates(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode())


def ca_extensions_as_k3s_makes_them(certificate: x509.Certificate) -> None:
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert (usage.value.digital_signature, usage.value.key_encipherment, usage.value.key_cert_sign) == (True,) * 3
    subject_key = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    authority_key = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert subject_key
    assert authority_key


@mock_test
def test_the_cas_are_what_k3s_s_script_makes(recorder: Recorder) -> pulumi.Output[Any]:
    pki = make_pki()

    def check(values: list[str]) -> None:
        files = dict(zip(pki.server_files, values, strict=True))
        assert sorted(files) == sorted(L.pki_files())  # the root's and the intermediate's keys are not among them
        for ca in L.K3S_LEAF_CAS:
            slug = f"pki-{ca.replace('/', '-')}-ca"
            leaf, intermediate, root = certificates(files[f"{slug}.crt"])  # the chain, leaf CA first
            assert leaf.subject.rfc4514_string() == f"CN=k3s-{ca.replace('/', '-')}-ca@ephemeros-lab-0"
            assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
            assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days in (3700, 3699)
            for rsa_ca in (intermediate, root):
                public = rsa_ca.public_key()
                assert isinstance(public, rsa.RSAPublicKey)
                assert public.key_size == 4096
            assert (intermediate.not_valid_after_utc - intermediate.not_valid_before_utc).days in (3700, 3699)
            assert (root.not_valid_after_utc - root.not_valid_before_utc).days in (7300, 7299)
            for ca_certificate in (leaf, intermediate, root):
                ca_extensions_as_k3s_makes_them(ca_certificate)
            leaf.verify_directly_issued_by(intermediate)
            intermediate.verify_directly_issued_by(root)
            assert files[f"{slug}.key"].startswith("-----BEGIN EC PRIVATE KEY-----")
        assert files[f"pki-{L.K3S_SERVICE_KEY}"].startswith("-----BEGIN RSA PRIVATE KEY-----")  # PKCS#1, 2048

    return pulumi.Output.all(*pki.server_files.values()).apply(check)


@mock_test
def test_openssl_verifies_every_chain(recorder: Recorder) -> pulumi.Output[Any]:
    pki = make_pki()

    def check(values: list[str]) -> None:
        files = dict(zip(pki.server_files, values, strict=True))
        for name, content in files.items():
            if not name.endswith(".crt"):
                continue
            leaf, intermediate, root = (c.public_bytes(Encoding.PEM).decode() for c in certificates(content))
            workdir = Path(tempfile.mkdtemp())
            for part, pem in (("leaf", leaf), ("intermediate", intermediate), ("root", root)):
                (workdir / part).write_text(pem)
            done = subprocess.run(
                ["openssl", "verify", "-CAfile", "root", "-untrusted", "intermediate", "leaf"],
                cwd=workdir,
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, done.stderr

    return pulumi.Output.all(*pki.server_files.values()).apply(check)


@mock_test
def test_the_admin_kubeconfig_is_signed_by_the_client_ca(recorder: Recorder) -> pulumi.Output[Any]:
    pki = make_pki()

    def check(values: list[str]) -> None:
        kubeconfig, client_chain, server_chain = values
        config = yaml.safe_load(kubeconfig)
        assert config["clusters"][0]["cluster"]["server"] == "https://node0.lab.ephemeros.test:6443"
        user = config["users"][0]["user"]
        admin = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
        assert admin.subject.rfc4514_string() == "CN=system:admin,O=system:masters"
        admin.verify_directly_issued_by(certificates(client_chain)[0])
        trusted = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
        assert trusted == server_chain

    return pulumi.Output.all(pki.kubeconfig, pki.server_files["pki-client-ca.crt"], pki.server_ca).apply(check)


@pytest.mark.parametrize(("days", "renewed"), [(k3s.ADMIN_DAYS, False), (k3s.ADMIN_RENEW_DAYS - 1, True)])
def test_the_admin_certificate_is_renewed_near_its_end_only(days: int, renewed: bool) -> None:
    key = new_key("ec-p256")
    inputs = CertificateProps(
        key_pem=key, common_name="system:admin", days=k3s.ADMIN_DAYS, renew_before_days=k3s.ADMIN_RENEW_DAYS
    )
    made = dict(CertificateProvider().create(inputs.to_props()).outs or {})
    made["pem"] = certificate(CertificateSpec("system:admin", days=days), key, None)  # `days` left
    result = CertificateProvider().diff("id", made, inputs.to_props())
    assert bool(result.replaces) is renewed
    never = dataclasses.replace(inputs, renew_before_days=0).to_props()
    assert not CertificateProvider().diff("id", made, never).replaces  # a certificate without the window is kept


# --- the CA hash of k3s's secure token (pkg/clientaccess/token.go, hashCA) ----------------------------------


def ca_chain() -> tuple[str, str, str]:
    """(leaf CA, intermediate, root) PEMs."""
    root_key, intermediate_key, leaf_key = new_key("ec-p256"), new_key("ec-p256"), new_key("ec-p256")
    root = certificate(CertificateSpec("root", ca=True), root_key, None)
    intermediate = certificate(CertificateSpec("intermediate", ca=True), intermediate_key, Issuer(root, root_key))
    leaf = certificate(CertificateSpec("leaf", ca=True), leaf_key, Issuer(intermediate, intermediate_key))
    return leaf, intermediate, root


def test_one_certificate_hashes_the_files_bytes() -> None:
    _, _, root = ca_chain()
    assert k3s.ca_hash(root) == hashlib.sha256(root.encode()).hexdigest()


def test_a_bundle_hashes_its_roots_der() -> None:
    leaf, intermediate, root = ca_chain()
    der = x509.load_pem_x509_certificate(root.encode()).public_bytes(Encoding.DER)
    assert k3s.ca_hash(chain(leaf, intermediate, root)) == hashlib.sha256(der).hexdigest()
    # The order of the others does not matter, only that the first one chains to the root.
    assert k3s.ca_hash(chain(leaf, root, intermediate)) == hashlib.sha256(der).hexdigest()


def test_a_bundle_that_does_not_chain_hashes_the_files_bytes() -> None:
    leaf, _, root = ca_chain()  # the intermediate is missing: no chain from the leaf to the root
    bundle = chain(leaf, root)
    assert k3s.ca_hash(bundle) == hashlib.sha256(bundle.encode()).hexdigest()


def test_the_secure_token_has_k3s_s_form() -> None:
    leaf, intermediate, root = ca_chain()
    token = k3s.secure_token(chain(leaf, intermediate, root), "server", "s3cret")
    assert re.fullmatch(r"K10[0-9a-f]{64}::server:s3cret", token)
    assert token[3:67] == k3s.ca_hash(chain(leaf, intermediate, root))
