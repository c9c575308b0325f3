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
from pki.x509 import KeyKind, chain
from providers.certificate import Certificate
from providers.private_key import PrivateKey
from settings.model import Settings


@dataclass(frozen=True)
class ClusterPkiArgs:
    settings: Settings


class ClusterPki(pulumi.ComponentResource):
    """The CAs (chains and keys) a server's stick carries, the server CA's chain, and the admin kubeconfig."""

    server_files: dict[str, pulumi.Output[str]]  # stick file name (base.node_layout.pki_files) -> content
    server_ca: pulumi.Output[str]  # the chain that nodes and the kubeconfig trust, and whose root the tokens hash
    kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterPkiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ephemeros:index:ClusterPki", name, None, opts)
        settings = args.settings
        cluster, generation = settings.cluster_name, settings.rotate.cluster_ca
        child = pulumi.ResourceOptions(parent=self)

        def key(suffix: str, kind: KeyKind, key_generation: int = generation) -> PrivateKey:
            return PrivateKey(f"{name}-{suffix}-key", kind=kind, generation=key_generation, opts=child)

        root_key = key("root-ca", k3s.ROOT_KEY)
        root = Certificate(f"{name}-root-ca", spec=k3s.root_spec(cluster, generation), key_pem=root_key.pem, opts=child)
        intermediate_key = key("intermediate-ca", k3s.INTERMEDIATE_KEY)
        intermediate = Certificate(
            f"{name}-intermediate-ca",
            spec=k3s.intermediate_spec(cluster, generation),
            key_pem=intermediate_key.pem,
            issuer=(root.pem, root_key.pem),
            opts=child,
        )
        self.server_files = {}
        leaves: dict[str, tuple[pulumi.Output[str], pulumi.Output[str]]] = {}
        for ca in L.K3S_LEAF_CAS:
            slug = L.ca_stem(ca)
            leaf_key = key(slug, k3s.LEAF_CA_KEY)
            leaf = Certificate(
                f"{name}-{slug}",
                spec=k3s.leaf_ca_spec(ca, cluster, generation),
                key_pem=leaf_key.pem,
                issuer=(intermediate.pem, intermediate_key.pem),
                opts=child,
            )
            bundle = pulumi.Output.all(leaf.pem, intermediate.pem, root.pem).apply(lambda pems: chain(*pems))
            leaves[ca] = (bundle, leaf_key.pem)
            self.server_files[L.pki_file(ca, "crt")] = bundle
            self.server_files[L.pki_file(ca, "key")] = leaf_key.pem
        self.server_files[L.SERVICE_KEY_FILE] = key("service", k3s.SERVICE_KEY).pem
        self.server_ca = leaves["server"][0]

        client_ca, client_ca_key = leaves["client"]
        admin_key = key("admin", k3s.CLIENT_KEY, settings.rotate.admin_kubeconfig)
        admin = Certificate(
            f"{name}-admin",
            spec=k3s.admin_spec(),
            key_pem=admin_key.pem,
            issuer=(client_ca.apply(_first), client_ca_key),
            renew_before_days=k3s.ADMIN_RENEW_DAYS,
            opts=child,
        )
        if settings.datastore.type == "etcd":
            etcd_ca, etcd_ca_key = leaves["etcd/server"]
            etcd_client_key = key("etcd-client", k3s.CLIENT_KEY)
            etcd_client = Certificate(
                f"{name}-etcd-client",
                spec=k3s.etcd_client_spec(cluster),
                key_pem=etcd_client_key.pem,
                issuer=(etcd_ca.apply(_first), etcd_ca_key),
                opts=child,
            )
            self.server_files[L.ETCD_CLIENT_CERT] = etcd_client.pem
            self.server_files[L.ETCD_CLIENT_KEY] = etcd_client_key.pem
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(self.server_ca, admin.pem, admin_key.pem).apply(
                lambda v: k3s.kubeconfig(cluster, settings.api_server_url, v[0], v[1], v[2])
            )
        )
        self.register_outputs({"serverCa": self.server_ca, "kubeconfig": self.kubeconfig})


def _first(bundle: str) -> str:
    """A chain's first certificate: the CA that signs."""
    end = "-----END CERTIFICATE-----\n"
    return bundle.split(end, 1)[0] + end
