"""What the Vultr datastore is made of, from the settings: names, firewall rules, certificate names, DNS record
and heartbeat checks. Pure; the Datastore component wires it to resources."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network

from base import datastore_layout as D
from settings.datastore import Vultr
from settings.dns_plan import datastore_record
from settings.heartbeat_plan import CheckSpec, dumps_check, restore_check
from settings.model import Settings


@dataclass(frozen=True)
class FirewallRuleSpec:
    """Let `network` reach TCP `port` (for `what`: postgres or ssh)."""

    name: str  # unique in the datastore: what and network
    what: str
    port: int
    network: IPv4Network


@dataclass(frozen=True)
class DatastorePlan:
    vultr: Vultr
    hostname: str
    label: str  # the VM's and its reserved address's, in the Vultr portal
    tags: tuple[str, ...]
    description: str  # the firewall group's
    ca_name: str
    dns_names: tuple[str, ...]  # the names in the server certificate besides the address
    firewall_rules: tuple[FirewallRuleSpec, ...]
    record: str | None  # the A record pulumi up keeps for dnsName
    dumps_check: CheckSpec | None
    restore_check: CheckSpec | None


def _slug(network: IPv4Network) -> str:
    return str(network).replace(".", "-").replace("/", "-")


def datastore_plan(settings: Settings) -> DatastorePlan:
    """The plan of a datastore.type vultr stack."""
    vultr = settings.datastore.vultr
    if vultr is None:
        raise ValueError("a datastore plan needs datastore.vultr (settings.datastore checks it)")
    cluster = settings.cluster_name
    rules = tuple(
        FirewallRuleSpec(f"{what}-{_slug(network)}", what, port, network)
        for what, port, sources in (
            ("postgres", D.POSTGRES_PORT, vultr.allowed_sources),
            ("ssh", D.SSH_PORT, vultr.admin_sources),
        )
        for network in sources
    )
    return DatastorePlan(
        vultr=vultr,
        hostname=vultr.hostname or f"{cluster}-datastore",
        label=vultr.label or f"ephemeros {cluster} datastore",
        tags=("ephemeros", *vultr.tags),
        description=f"ephemeros {cluster} datastore",
        ca_name=f"ephemeros {cluster} datastore CA",
        dns_names=(vultr.dns_name,) if vultr.dns_name else (),
        firewall_rules=rules,
        record=datastore_record(settings),
        dumps_check=dumps_check(settings),
        restore_check=restore_check(settings),
    )
