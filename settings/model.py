"""The stack settings a user writes in Pulumi.<stack>.yaml, as typed models (see settings.model_base.Model)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from base.node_layout import K3S_API_PORT, boot_script_name, config_name
from settings.addons import Addons, Kubernetes
from settings.datastore import Datastore
from settings.model_base import Model, empty_is_none, off
from settings.registries import Registries
from settings.snippets import Snippet, Snippets
from settings.types import (
    AbsolutePath,
    ChannelList,
    CheckTag,
    DnsName,
    FlatcarVersion,
    HostName,
    HttpUrl,
    ImageReference,
    InterfaceName,
    K3sVersion,
    KernelArg,
    LabelKey,
    LabelValue,
    MacAddress,
    NameServer,
    Sha256,
    SshPublicKey,
    Taint,
    host_and_port,
)
from settings.updates import Updates

Role = Literal["server", "agent"]
K3sComponent = Literal["traefik", "servicelb", "local-storage", "metrics-server", "coredns"]


def _disabled_is_none(value: Any) -> Any:
    """Pulumi.yaml gives optional feature keys an 'off' default; the program sees an off feature as absent."""
    return value if value is not None and value.enabled else None


class K3s(Model):
    """The k3s release every node downloads, and cluster-wide k3s settings."""

    version: K3sVersion = Field(description="k3s release, e.g. v1.36.4+k3s1")
    sha256: Sha256 = Field(description="sha256 of that release's amd64 `k3s` binary (from sha256sum-amd64.txt)")
    base_url: HttpUrl = Field(
        default="https://github.com/k3s-io/k3s/releases/download",
        description="where releases are downloaded from: <baseUrl>/<version>/k3s; point it at a LAN mirror",
    )
    cluster_cidr: IPv4Network = Field(default=IPv4Network("10.42.0.0/16"), description="pod network")
    service_cidr: IPv4Network = Field(default=IPv4Network("10.43.0.0/16"), description="service network")
    disable: tuple[K3sComponent, ...] = Field(default=(), description="packaged components not to deploy")

    @property
    def binary_url(self) -> str:
        return f"{self.base_url}/{quote(self.version, safe='')}/k3s"

    @model_validator(mode="after")
    def _networks_apart(self) -> K3s:
        if self.cluster_cidr.overlaps(self.service_cidr):
            raise ValueError(
                f"clusterCidr {self.cluster_cidr} and serviceCidr {self.service_cidr} overlap: "
                "give them disjoint ranges"
            )
        return self


class Flatcar(Model):
    """The Flatcar Container Linux release that nodes boot into RAM. Each node's served boot script names it, so a
    change reaches a node at its next boot without writing its stick again."""

    version: FlatcarVersion = Field(default="4593.2.5", description="release to boot, or 'current'")
    base_url: HttpUrl = Field(
        default="https://stable.release.flatcar-linux.net/amd64-usr",
        description="channel URL holding <version>/flatcar_production_pxe.vmlinuz; point it at a LAN mirror",
    )

    kernel_args: tuple[KernelArg, ...] = Field(
        # Kernel messages on both; the last console (the screen) is the one a logged-in user and systemd get.
        default=("console=ttyS0,115200n8", "console=tty0"),
        description="kernel arguments for every node, after those ephemeros sets",
    )

    @property
    def release_url(self) -> str:
        return f"{self.base_url}/{self.version}"


class Bootloader(Model):
    """The boot programs every stick is built from: iPXE for UEFI and for BIOS (through syslinux)."""

    ipxe_efi: str = Field(
        default=".tools/ipxe/ipxe-amd64.efi",
        description="x86_64 iPXE EFI binary that runs autoexec.ipxe (iPXE from 2021 on, e.g. Debian trixie's)",
    )
    ipxe_lkrn: str = Field(default=".tools/ipxe/ipxe.lkrn", description="iPXE as a Linux kernel image, for BIOS")
    syslinux_dir: str = Field(default="/usr/lib/syslinux", description="syslinux's files (Debian: syslinux-common)")


class Bond(Model):
    """An LACP (or other mode) bond of several network interfaces."""

    name: InterfaceName = Field(default="bond0", description="name of the bond interface")
    interfaces: tuple[InterfaceName, ...] = Field(min_length=1, description="member interfaces or patterns")
    mode: Literal["802.3ad", "active-backup", "balance-alb", "balance-tlb", "balance-xor", "balance-rr"] = Field(
        default="802.3ad", description="bonding mode; 802.3ad is LACP, which the switch must speak too"
    )


class Stick(Model):
    """Where to write a node's boot stick during `pulumi up`: the device, and its path again to allow erasing it."""

    device: AbsolutePath = Field(description="the stick's whole device, best by id: /dev/disk/by-id/usb-...")
    confirm: str = Field(description="the same path again: the stick is erased and written only when they match")

    @model_validator(mode="after")
    def _confirmed(self) -> Stick:
        if self.confirm != self.device:
            raise ValueError(
                f"confirm must repeat the device path {self.device!r} to allow erasing it; "
                "nothing is written to a device without that"
            )
        return self


class Node(Model):
    """One machine of the cluster."""

    hostname: HostName = Field(description="the node's name, a DNS label; its FQDN is <hostname>.<domain>")
    role: Role = Field(description="server (runs the k3s control plane) or agent (runs workloads)")
    mac: MacAddress | None = Field(default=None, description="MAC of the boot interface")
    address: IPv4Interface | None = Field(default=None, description="static address with prefix, e.g. 10.0.0.5/24")
    gateway: IPv4Address | None = Field(default=None, description="default gateway, with a static address")
    nameservers: tuple[IPv4Address, ...] = Field(default=(), description="DNS servers, with a static address")
    interfaces: tuple[InterfaceName, ...] = Field(default=(), description="interfaces to configure; default all")
    bond: Bond | None = Field(default=None, description="bond these interfaces into one")
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, description="Kubernetes labels of the node")
    taints: tuple[Taint, ...] = Field(default=(), description="Kubernetes taints of the node, key[=value]:Effect")
    kernel_args: tuple[KernelArg, ...] = Field(default=(), description="extra kernel arguments for this node")
    stick: Stick | None = Field(default=None, description="write this node's stick to a device during pulumi up")
    snippets: tuple[Snippet, ...] = Field(
        default=(), description="Ignition 3.3 fragments (YAML) for this node, merged after the others (public)"
    )

    @model_validator(mode="after")
    def _network(self) -> Node:
        if self.address is None and (self.gateway is not None or self.nameservers):
            raise ValueError("gateway and nameservers need a static address: set address too, or remove them")
        if self.gateway is not None and self.address is not None and self.gateway not in self.address.network:
            raise ValueError(f"gateway {self.gateway} is outside {self.address.network}: check address and gateway")
        if self.bond is not None and self.interfaces:
            raise ValueError("give the member interfaces in bond.interfaces, not in interfaces")
        return self


class Heartbeat(Model):
    """Heartbeat checks: each node pings its check every period, or its /fail URL when k3s is unhealthy."""

    enabled: bool = Field(default=True, description="false turns heartbeats off")
    provider: Literal["healthchecks", "urls"] = Field(
        default="healthchecks",
        description="healthchecks: checks made through the API (secret healthchecksApiKey); "
        "urls: your own ping URL per node (secret heartbeatUrls)",
    )
    api_url: HttpUrl = Field(default="https://healthchecks.io", description="healthchecks API base URL")
    # The API's bounds for a check's timeout and grace (Management API v3: 60 to 31536000 seconds).
    period: int = Field(default=300, ge=60, le=31536000, description="seconds between pings")
    grace: int = Field(default=60, ge=60, le=31536000, description="seconds of lateness before an alert")
    tags: tuple[CheckTag, ...] = Field(
        default=(), description="tags for every check, besides ephemeros, cluster, role; one word each"
    )
    channels: ChannelList = Field(
        default="*", description="notification channels: '*' for all, '' for none, or a comma-separated list of names"
    )
    cluster_check: bool = Field(default=False, description="also make one check for the whole cluster")


class KubeVip(Model):
    """A virtual IP for the k3s API, held by one server at a time with kube-vip (ARP, leader election): set
    apiServerAddress to it. k3s deploys kube-vip from the servers' manifests at every start."""

    enabled: bool = Field(default=True, description="false turns kube-vip off")
    interface: InterfaceName | None = Field(
        default=None, description="the servers' interface on the VIP's network, e.g. eno1 or bond0 (required)"
    )
    image: ImageReference = Field(
        default="ghcr.io/kube-vip/kube-vip:v0.9.2",
        description="kube-vip's image; pin it by digest (<image>@sha256:...) or point it at a LAN mirror",
    )

    @model_validator(mode="after")
    def _interface(self) -> KubeVip:
        if self.enabled and self.interface is None:
            raise ValueError("interface is required: name the servers' interface on the VIP's network, e.g. eno1")
        return self


class Rfc2136(Model):
    """DNS updates (RFC 2136) signed with TSIG, accepted by BIND, Knot, PowerDNS and many routers."""

    server: NameServer = Field(description="host name or IP address of the primary name server (IPv6 too)")
    port: int = Field(default=53, ge=1, le=65535, description="its DNS port")
    zone: DnsName = Field(description="the zone the nodes' names are in, as the server serves it")
    key_name: DnsName = Field(description="name of the TSIG key the server's update policy allows")
    algorithm: Literal["hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1"] = Field(
        default="hmac-sha256", description="the TSIG key's algorithm"
    )
    ttl: int = Field(default=300, ge=0, le=86400, description="TTL of the records, in seconds")
    updater: str = Field(
        default=".tools/nodetools/ephemeros-dnsupdate",
        description="the program nodes run to update their own records; served next to the Ignition configs",
    )

    @property
    def endpoint(self) -> str:
        """server:port, with an IPv6 address in brackets."""
        return host_and_port(self.server, self.port)


class Namecheap(Model):
    """Namecheap dynamic DNS, updated by the nodes themselves."""

    domain: DnsName | None = Field(
        default=None, description="the domain registered at Namecheap; default: the cluster's domain"
    )
    update_url: HttpUrl = Field(
        default="https://dynamicdns.park-your-domain.com/update", description="Namecheap's dynamic DNS endpoint"
    )


class Dns(Model):
    """DNS records for the nodes and the API server."""

    rfc2136: Rfc2136 | None = Field(default=None, description="records kept with RFC 2136 updates")
    namecheap: Namecheap | None = Field(default=None, description="records kept with Namecheap dynamic DNS")
    primary_record: HostName = Field(
        default="primary", description="name that every healthy server claims, for ingress"
    )
    update_period: int = Field(default=300, ge=60, description="seconds between a node's own DNS updates")

    @property
    def enabled(self) -> bool:
        return self.rfc2136 is not None or self.namecheap is not None


class Rotation(Model):
    """Generations of the cluster's secrets: raise one to replace that secret at the next `pulumi up`."""

    server_token: int = Field(default=0, ge=0, description="generation of the k3s server token")
    agent_token: int = Field(default=0, ge=0, description="generation of the k3s agent token")
    node_passwords: dict[HostName, int] = Field(
        default_factory=dict, description="generation of each node's k3s node password, by hostname"
    )
    datastore_password: int = Field(
        default=0, ge=0, description="generation of the Vultr datastore's k3s password (changed in place)"
    )
    cluster_ca: int = Field(
        default=0,
        ge=0,
        description="generation of the cluster's CAs (README, The cluster's identity: how a rotation is done)",
    )
    admin_kubeconfig: int = Field(default=0, ge=0, description="generation of the admin kubeconfig's certificate")


def fqdn(hostname: str, domain: str) -> str:
    """A node's FQDN, from its hostname and the stack's domain (as the settings read it: lower case, no final dot)."""
    return f"{hostname}.{domain}"


class Settings(Model):
    """All non-secret settings of a stack."""

    cluster_name: HostName = Field(description="name of the cluster, a DNS label such as lab; names its resources")
    domain: DnsName = Field(description="DNS domain of the nodes (e.g. lab.example.com): a node is <hostname>.<domain>")
    api_server_address: Annotated[DnsName | None, BeforeValidator(empty_is_none)] = Field(
        default=None,
        description="name or address that agents (and joining servers) reach the k3s API at; "
        "default: the first server's FQDN",
    )
    ignition_base_url: HttpUrl = Field(
        description="base URL the public Ignition configs are served from: node N fetches <ignitionBaseUrl>/N.ign"
    )
    k3s: K3s = Field(alias="k3s", description="the k3s release every node downloads, and cluster-wide k3s settings")
    flatcar: Flatcar = Field(default=Flatcar(), description="the Flatcar release nodes boot")
    bootloader: Bootloader = Field(default=Bootloader(), description="the boot programs the sticks are built from")
    nodes: tuple[Node, ...] = Field(min_length=1, description="the machines of the cluster")
    ssh_keys: tuple[SshPublicKey, ...] = Field(min_length=1, description="SSH public keys for the core user")
    datastore: Datastore = Field(default=Datastore(), description="where the servers keep cluster state")
    heartbeat: Annotated[Heartbeat | None, AfterValidator(_disabled_is_none)] = Field(
        default=None, description="a heartbeat check per node", json_schema_extra=off({"enabled": False})
    )
    kube_vip: Annotated[KubeVip | None, AfterValidator(_disabled_is_none)] = Field(
        default=None, description="a virtual IP for the k3s API", json_schema_extra=off({"enabled": False})
    )
    dns: Annotated[Dns | None, AfterValidator(_disabled_is_none)] = Field(
        default=None, description="DNS records for the nodes and the API server", json_schema_extra=off({})
    )
    addons: Addons = Field(default=Addons(), description="Helm charts and manifests the cluster runs")
    kubernetes: Kubernetes = Field(default=Kubernetes(), description="how Pulumi works with the cluster's API")
    updates: Annotated[Updates | None, AfterValidator(_disabled_is_none)] = Field(
        default=None, description="coordinated reboots", json_schema_extra=off({"enabled": False})
    )
    registries: Registries = Field(default=Registries(), description="image registries and mirrors for k3s")
    snippets: Snippets = Field(default=Snippets(), description="Ignition 3.3 fragments merged into nodes' configs")
    rotate: Rotation = Field(default=Rotation(), description="generations of the cluster's secrets")

    @property
    def servers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == "server")

    @property
    def api_server(self) -> str:
        return self.api_server_address or self.fqdn(self.servers[0])

    @property
    def api_server_url(self) -> str:
        return f"https://{self.api_server}:{K3S_API_PORT}"

    def fqdn(self, node: Node) -> str:
        return fqdn(node.hostname, self.domain)

    def ignition_url(self, node: Node) -> str:
        return f"{self.ignition_base_url}/{config_name(node.hostname)}"

    def boot_script_url(self, node: Node) -> str:
        return f"{self.ignition_base_url}/{boot_script_name(node.hostname)}"
