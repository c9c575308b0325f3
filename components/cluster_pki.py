"""ClusterPki: the k3s cluster's identity, made by `pulumi up` before any node boots (see pki/k3s.py): its CAs,
the service-account key, an admin client certificate, and the kubeconfig that uses it.

Everything is made once and kept; the CAs are made anew only when rotate.clusterCa is raised, the admin
certificate when rotate.adminKubeconfig is, or by a `pulumi up` in its last ADMIN_RENEW_DAYS. The root's and the
intermediate's keys stay in Pulumi's state.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from base import node_layout as L
from pki import k3s
from pki.x509 import CertificateSpec, KeyKind, chain
from providers.certificate import Certificate
from providers.private_key import PrivateKey
from settings.model import Settings


@dataclass(frozen=True)
class ClusterPkiArgs:
    settings: Settings


@dataclass(frozen=True)
class Issued:
    """A certificate and its key."""

    pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]


class ClusterPki(pulumi.ComponentResource):
    """The CAs (chains and keys) a server's stick carries, the server CA's chain, and the admin kubeconfig."""

    server_files: dict[str, pulumi.Output[str]]  # stick file name (base.node_layout.pki_files) -> content
    server_ca: pulumi.Output[str]  # the chain that nodes and the kubeconfig trust, and whose root the tokens hash
    kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterPkiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ephemeros:index:ClusterPki", name, None, opts)
        self._name, self._child = name, pulumi.ResourceOptions(parent=self)
        settings = args.settings
        cluster, generation = settings.cluster_name, settings.rotate.cluster_ca
        self._generation = generation
        root = self._issued("root-ca", k3s.ROOT_KEY, k3s.root_spec(cluster, generation), None)
        between = self._issued(
            "intermediate-ca", k3s.INTERMEDIATE_KEY, k3s.intermediate_spec(cluster, generation), root
        )
        leaves = {
            ca: self._issued(L.ca_stem(ca), k3s.LEAF_CA_KEY, k3s.leaf_ca_spec(ca, cluster, generation), between)
            for ca in L.K3S_LEAF_CAS
        }
        chains = {
            ca: pulumi.Output.all(leaf.pem, between.pem, root.pem).apply(lambda p: chain(*p))
            for ca, leaf in leaves.items()
        }
        self.server_files = {L.pki_file(ca, "crt"): chains[ca] for ca in L.K3S_LEAF_CAS}
        self.server_files |= {L.pki_file(ca, "key"): leaves[ca].key_pem for ca in L.K3S_LEAF_CAS}
        self.server_files[L.SERVICE_KEY_FILE] = self._key("service", k3s.SERVICE_KEY, generation).pem
        self.server_ca = chains["server"]
        admin_generation = settings.rotate.admin_kubeconfig
        admin = self._issued("admin", k3s.CLIENT_KEY, k3s.admin_spec(), leaves["client"], admin_generation, renew=True)
        if settings.datastore.type == "etcd":
            etcd = self._issued("etcd-client", k3s.CLIENT_KEY, k3s.etcd_client_spec(cluster), leaves["etcd/server"])
            self.server_files |= {L.ETCD_CLIENT_CERT: etcd.pem, L.ETCD_CLIENT_KEY: etcd.key_pem}
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(self.server_ca, admin.pem, admin.key_pem).apply(
                lambda v: k3s.kubeconfig(cluster, settings.api_server_url, v[0], v[1], v[2])
            )
        )
        self.register_outputs({"serverCa": self.server_ca, "kubeconfig": self.kubeconfig})

    def _key(self, suffix: str, kind: KeyKind, generation: int) -> PrivateKey:
        return PrivateKey(f"{self._name}-{suffix}-key", kind=kind, generation=generation, opts=self._child)

    def _issued(
        self,
        suffix: str,
        kind: KeyKind,
        spec: CertificateSpec,
        issuer: Issued | None,
        generation: int | None = None,
        renew: bool = False,
    ) -> Issued:
        """A certificate with a key of its own, signed by `issuer` (None: by itself). The key's generation is the
        cluster CAs' unless given."""
        key = self._key(suffix, kind, self._generation if generation is None else generation)
        certificate = Certificate(
            f"{self._name}-{suffix}",
            spec=spec,
            key_pem=key.pem,
            issuer=(issuer.pem, issuer.key_pem) if issuer is not None else None,
            renew_before_days=k3s.ADMIN_RENEW_DAYS if renew else 0,
            opts=self._child,
        )
        return Issued(certificate.pem, key.pem)
