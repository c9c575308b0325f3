"""Which DNS records ephemeros keeps, and who keeps them. Pure.

Records known when `pulumi up` runs (nodes with static addresses, the API server's name) are Pulumi resources,
updated over RFC 2136. Nodes on DHCP keep their own record at run time, and healthy servers claim the shared
primary record; with Namecheap, which has no deploy-time API here, every node keeps its own record.
"""

from __future__ import annotations

from dataclasses import dataclass

from settings.model import Node, Settings


@dataclass(frozen=True)
class Record:
    name: str  # fully qualified, without the final dot
    type: str
    values: tuple[str, ...]
    ttl: int


@dataclass(frozen=True)
class RuntimeName:
    """A name a node points at its own address while it runs."""

    fqdn: str
    namecheap_host: str  # the same name relative to the domain registered at Namecheap
    only_when_healthy_server: bool
    via_namecheap: bool
    via_rfc2136: bool


def in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith(f".{zone}")


def deploy_records(settings: Settings) -> list[Record]:
    """A records that Pulumi manages: static nodes, and the API server's name on static servers."""
    dns = settings.dns
    if dns is None or dns.rfc2136 is None:
        return []
    ttl = dns.rfc2136.ttl
    records = [
        Record(settings.fqdn(node), "A", (str(node.address.ip),), ttl)
        for node in settings.nodes
        if node.address is not None
    ]
    api = settings.api_server
    servers = tuple(sorted(str(n.address.ip) for n in settings.servers if n.address is not None))
    names = {r.name for r in records}
    if servers and api not in names and in_zone(api, dns.rfc2136.zone):
        records.append(Record(api, "A", servers, ttl))
    return records


def namecheap_domain(settings: Settings) -> str:
    """The domain registered at Namecheap that the cluster's names are under."""
    dns = settings.dns
    if dns is not None and dns.namecheap is not None and dns.namecheap.domain is not None:
        return dns.namecheap.domain
    return settings.domain


def runtime_names(settings: Settings, node: Node) -> list[RuntimeName]:
    """The names `node` keeps pointed at itself at run time (its own, and the primary record on servers)."""
    dns = settings.dns
    if dns is None:
        return []
    subdomain = settings.domain[: -len(namecheap_domain(settings))].rstrip(".")

    def name(label: str, healthy_server: bool, namecheap: bool, rfc2136: bool) -> RuntimeName:
        host = f"{label}.{subdomain}" if subdomain else label
        return RuntimeName(f"{label}.{settings.domain}", host, healthy_server, namecheap, rfc2136)

    namecheap = dns.namecheap is not None
    rfc2136 = dns.rfc2136 is not None
    names = []
    # A static node's own record is a Pulumi resource under RFC 2136; Namecheap is only updated by nodes.
    own_rfc2136 = rfc2136 and node.address is None
    if namecheap or own_rfc2136:
        names.append(name(node.hostname, False, namecheap, own_rfc2136))
    if node.role == "server":
        names.append(name(dns.primary_record, True, namecheap, rfc2136))
    return names


def datastore_record(settings: Settings) -> str | None:
    """The datastore's DNS name, when `pulumi up` keeps its A record (dns.rfc2136 serves the zone it is in)."""
    vultr = settings.datastore.vultr
    rfc2136 = settings.dns.rfc2136 if settings.dns is not None else None
    if vultr is None or vultr.dns_name is None or rfc2136 is None or not in_zone(vultr.dns_name, rfc2136.zone):
        return None
    return vultr.dns_name


def taken_names(settings: Settings) -> set[str]:
    """Every name whose record ephemeros keeps for the nodes and the API server, at deploy time or at run time."""
    runtime = {n.fqdn for node in settings.nodes for n in runtime_names(settings, node)}
    return {r.name for r in deploy_records(settings)} | runtime | {settings.fqdn(n) for n in settings.nodes}


def needs_dns_updater(settings: Settings) -> bool:
    """Whether any node keeps its own RFC 2136 records, and so downloads the updater."""
    return any(n.via_rfc2136 for node in settings.nodes for n in runtime_names(settings, node))
