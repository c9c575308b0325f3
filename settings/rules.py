"""Rules that span several settings: the cluster as a whole must make sense, not only each value."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, ip_address

import yaml

from base import stick_layout as B
from base.node_layout import BOOT_DIGEST_ARG
from base.registries_file import configs_entries
from settings.credentials import Credentials
from settings.dns_plan import datastore_record, in_zone, taken_names
from settings.heartbeat_plan import (
    MAX_CHECK_NAME,
    cluster_check,
    dumps_check,
    node_check,
    restore_check,
    uses_healthchecks,
)
from settings.model import Settings
from settings.node_plan import node_plan
from settings.registries import registries_warnings, stick_entries
from settings.updates import updates_warnings

# The dev stack's placeholder SSH key (stacks/dev.yaml): its private half was thrown away, so it lets no one in.
PLACEHOLDER_SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILY9Yw23VJ4gHbd+RofU9iScY1bdpnqijBk+ZP8EsMOA"
# Kernel arguments that the boot script sets itself; a node may not override them.
RESERVED_KERNEL_ARGS = ("initrd", "ignition.config.url", "flatcar.first_boot", "BOOT_IMAGE", BOOT_DIGEST_ARG)


def _duplicates(values: Iterable[object]) -> list[str]:
    return sorted(str(v) for v, count in Counter(values).items() if v is not None and count > 1)


def cluster_problems(settings: Settings, credentials: Credentials) -> list[str]:
    """Problems as "<key path>: <what is wrong and what to do>", key paths without the namespace."""
    problems: list[str] = []
    nodes = settings.nodes
    servers = settings.servers

    if not servers:
        problems.append(
            "nodes: no node has role server, so there is nothing for agents to join: make at least one a server"
        )
    for name in _duplicates(n.hostname for n in nodes):
        problems.append(f"nodes: hostname {name} is used by more than one node: give each node its own")
    for mac in _duplicates(n.mac for n in nodes):
        problems.append(f"nodes: MAC {mac} is given to more than one node: each machine has its own")
    for address in _duplicates(n.address.ip if n.address else None for n in nodes):
        problems.append(f"nodes: address {address} is given to more than one node")
    for device in _duplicates(n.stick.device if n.stick else None for n in nodes):
        problems.append(f"nodes: stick device {device} is given to more than one node: one stick per node")
    for arg in settings.flatcar.kernel_args:
        if arg.split("=", 1)[0] in RESERVED_KERNEL_ARGS:
            problems.append(f"flatcar.kernelArgs: {arg!r} is set by ephemeros itself: remove it")

    for i, node in enumerate(nodes):
        where = f"nodes[{i}] (node {node.hostname})"
        if node.address is not None:
            for name, network in (
                ("clusterCidr", settings.k3s.cluster_cidr),
                ("serviceCidr", settings.k3s.service_cidr),
            ):
                if node.address.ip in network:
                    problems.append(
                        f"{where}.address: {node.address.ip} lies in k3s.{name} {network}: "
                        "move the node or the k3s range"
                    )
        for arg in node.kernel_args:
            if arg.split("=", 1)[0] in RESERVED_KERNEL_ARGS:
                problems.append(f"{where}.kernelArgs: {arg!r} is set by ephemeros itself: remove it")
        if settings.dns is not None and node.hostname == settings.dns.primary_record:
            problems.append(
                f"{where}.hostname: {node.hostname} is also dns.primaryRecord: rename the node or the record"
            )

    for hostname in sorted(settings.rotate.node_passwords.keys() - {n.hostname for n in nodes}):
        problems.append(f"rotate.nodePasswords.{hostname}: {hostname} is not a node: remove it")

    problems += _addon_problems(settings, credentials)
    problems += _api_server_problems(settings)
    problems += _kube_vip_problems(settings)
    problems += _datastore_problems(settings, credentials, len(servers))
    problems += _heartbeat_problems(settings, credentials)
    problems += _check_name_problems(settings)
    problems += _dns_problems(settings, credentials)
    return problems


def _is_ip(value: str) -> bool:
    try:
        ip_address(value)
    except ValueError:
        return False
    return True


def _api_server_problems(settings: Settings) -> list[str]:
    address = settings.api_server_address
    if address is None:
        return []
    for node in settings.nodes:
        if node.role != "agent":
            continue
        names = {node.hostname: "host name", settings.fqdn(node): "name"}
        if node.address is not None:
            names[str(node.address.ip)] = "address"
        if address in names:
            return [
                f"apiServerAddress: {address} is the {names[address]} of node {node.hostname}, an agent: agents "
                "join through it, so it must reach a server; name a server, a virtual IP or a load balancer in "
                "front of the servers"
            ]
    if "." not in address and not _is_ip(address):
        return [
            f"apiServerAddress: {address} is a bare host name, which agents resolve only through their DNS search "
            f"domains: write it in full (e.g. {address}.{settings.domain}) or give an IP address"
        ]
    return []


def _addon_problems(settings: Settings, credentials: Credentials) -> list[str]:
    charts = {chart.name for chart in settings.addons.charts}
    problems = []
    for name, values in sorted(credentials.addon_values.items()):
        if name not in charts:
            problems.append(f"addonValues.{name}: {name} is not a chart in addons.charts: remove it or add the chart")
            continue
        try:
            document = yaml.safe_load(values)
        except yaml.YAMLError:
            document = None
        if not isinstance(document, dict):
            problems.append(
                f"addonValues.{name}: is not a YAML mapping of values: write it like 'auth: {{password: ...}}'"
            )
    return problems + _stick_problems(settings, credentials)


def _stick_problems(settings: Settings, credentials: Credentials) -> list[str]:
    """What a node's stick carries from the secret settings, beside what Pulumi makes (tokens, CAs, keys), must fit
    its secrets partition: the charts' secret values on a server (unless Pulumi applies them), the registries'
    credentials on every node."""
    room = B.SECRETS_DATA_LIMIT - B.SECRETS_OTHER_FILES
    auth = len(configs_entries(stick_entries(settings.registries, credentials.registry_auth)).encode())
    largest = (0, 0)  # (secret values, registry credentials) of the node that carries the most
    for node in settings.nodes:
        plan = node_plan(settings, node, credentials)
        values = sum(len(credentials.addon_values[chart].encode()) for chart in plan.addon_secret_values)
        largest = max(largest, (values, auth if plan.registry_auth_hosts else 0), key=sum)
    values, auth = largest
    if values + auth <= room:
        return []
    if not values:
        return [
            f"registryAuth: the registries' credentials take {auth // 1024} KiB, and a node's stick holds "
            f"{room // 1024} KiB of them (its secrets partition also carries its tokens): make them smaller"
        ]
    also = f" and the registries' credentials (registryAuth) {auth // 1024} KiB" if auth else ""
    return [
        f"addonValues: the secret values take {values // 1024} KiB{also}, and a server's stick holds "
        f"{room // 1024} KiB of them (its secrets partition also carries its tokens and the cluster's CAs): make them "
        "smaller, or keep large values in a Secret of your own"
    ]


def _kube_vip_problems(settings: Settings) -> list[str]:
    if settings.kube_vip is None:
        return []
    address = settings.api_server_address
    if address is None or not _is_ip(address):
        return [
            "apiServerAddress: kubeVip holds a virtual IP for the API, and apiServerAddress must be it: an IPv4 "
            "address on the servers' network that no machine has, e.g. pulumi config set apiServerAddress "
            "192.168.1.250"
        ]
    vip = IPv4Address(address)
    problems = []
    reserved: dict[tuple[str, IPv4Network], list[str]] = {}  # (what the VIP is there, network) -> its nodes
    for node in settings.nodes:
        if node.address is None:
            continue
        network = node.address.network
        if node.address.ip == vip:
            problems.append(
                f"apiServerAddress: {vip} is node {node.hostname}'s own address; the virtual IP must be one no "
                "machine has"
            )
        elif node.role == "server" and vip not in network:
            problems.append(
                f"apiServerAddress: {vip} is outside server {node.hostname}'s network {network}; "
                "kube-vip announces it there with ARP, so it must be in that network"
            )
        elif what := _reserved_address(vip, network, node.gateway):
            reserved.setdefault((what, network), []).append(node.hostname)
    for (what, network), hostnames in reserved.items():
        problems.append(
            f"apiServerAddress: {vip} is the {what} of {network} (the network of {', '.join(hostnames)}), which no "
            f"server can hold: give a free host address of that network, {network[1]} to {network[-2]}, that no "
            "machine has"
        )
    return problems


def _reserved_address(address: IPv4Address, network: IPv4Network, gateway: IPv4Address | None) -> str | None:
    """What `address` already is on `network`, if it is not a free host address there: its gateway, or its network
    or broadcast address (a /31 or /32 has neither)."""
    if address == gateway:
        return "gateway"
    if network.prefixlen < 31 and address == network.network_address:
        return "network address"
    if network.prefixlen < 31 and address == network.broadcast_address:
        return "broadcast address"
    return None


def _check_name_problems(settings: Settings) -> list[str]:
    """Check names the healthchecks API would refuse ("name is too long"), found before anything is made."""
    if not uses_healthchecks(settings):
        return []
    problems = []
    for i, node in enumerate(settings.nodes):
        name = node_check(settings, node).name
        if len(name) > MAX_CHECK_NAME:
            problems.append(
                f"nodes[{i}] (node {node.hostname}).hostname: its check would be named {name} ({len(name)} "
                f"characters), and healthchecks takes at most {MAX_CHECK_NAME}: shorten the host name or domain"
            )
    for key, what, check in (
        ("heartbeat.clusterCheck", "the cluster's check", cluster_check(settings)),
        ("datastore.dumps", "the dumps' check", dumps_check(settings)),
        ("datastore.dumps", "the restore check's heartbeat check", restore_check(settings)),
    ):
        if check is not None and len(check.name) > MAX_CHECK_NAME:
            problems.append(
                f"{key}: {what} would be named {check.name!r} ({len(check.name)} characters), and healthchecks "
                f"takes at most {MAX_CHECK_NAME}: shorten clusterName or domain"
            )
    return problems


def _datastore_problems(settings: Settings, credentials: Credentials, servers: int) -> list[str]:
    kind = settings.datastore.type
    problems = []
    if kind == "sqlite" and servers > 1:
        problems.append(
            f"datastore.type: sqlite serves exactly one server, and {servers} nodes are servers: "
            "use etcd (3, 5, ... servers) or postgres, or make the others agents"
        )
    if kind == "etcd" and (servers < 3 or servers % 2 == 0):
        problems.append(
            f"datastore.type: embedded etcd needs an odd number of servers, at least 3, and {servers} are given: "
            "add or remove servers, or use postgres (any number) or sqlite (one)"
        )
    if kind == "postgres" and not credentials.datastore_endpoint:
        problems.append(
            "datastoreEndpoint: datastore.type is postgres but no endpoint is set: "
            "pulumi config set --secret datastoreEndpoint postgres://user:password@host:5432/k3s"
        )
    if kind != "postgres" and credentials.datastore_endpoint:
        problems.append(
            f"datastoreEndpoint: is set but datastore.type is {kind}: set datastore.type to postgres, "
            "or remove it with `pulumi config rm datastoreEndpoint`"
        )
    dumps = settings.datastore.dumps is not None
    needs = {  # credential: (needed, value, what needs it)
        "vultrApiKey": (kind == "vultr", credentials.vultr_api_key, "datastore.type vultr"),
        "dumpsAccessKeyId": (dumps, credentials.dumps_access_key_id, "datastore.dumps"),
        "dumpsSecretAccessKey": (dumps, credentials.dumps_secret_access_key, "datastore.dumps"),
    }
    for key, (needed, value, what) in needs.items():
        if needed and not value:
            problems.append(f"{key}: {what} needs it, and it is not set: pulumi config set --secret {key} <value>")
        if value and not needed:
            problems.append(f"{key}: is set, but only {what} uses it: configure that, or `pulumi config rm {key}`")
    vultr = settings.datastore.vultr
    if vultr is not None and vultr.dns_name is not None and vultr.dns_name in taken_names(settings):
        problems.append(
            f"datastore.vultr.dnsName: {vultr.dns_name} is already the name of a node or of the API server, whose "
            "record ephemeros keeps too: give the datastore a name of its own"
        )
    return problems


def _heartbeat_problems(settings: Settings, credentials: Credentials) -> list[str]:
    heartbeat = settings.heartbeat
    provider = heartbeat.provider if heartbeat is not None else None
    problems = [
        f"{key}: is set, but only heartbeat.provider {user} uses it: configure that, or `pulumi config rm {key}`"
        for key, value, user in (
            ("healthchecksApiKey", credentials.healthchecks_api_key, "healthchecks"),
            ("heartbeatUrls", credentials.heartbeat_urls, "urls"),
        )
        if value and provider != user
    ]
    if heartbeat is None:
        return problems
    if heartbeat.cluster_check and provider != "healthchecks":
        problems.append(
            "heartbeat.clusterCheck: needs heartbeat.provider healthchecks, which makes the cluster's check"
        )
    if provider == "healthchecks" and not credentials.healthchecks_api_key:
        problems.append(
            "healthchecksApiKey: heartbeat.provider is healthchecks but no API key is set: "
            "pulumi config set --secret healthchecksApiKey <project read-write key>"
        )
    if provider == "urls":
        hostnames = {n.hostname for n in settings.nodes}
        missing = sorted(hostnames - credentials.heartbeat_urls.keys())
        extra = sorted(credentials.heartbeat_urls.keys() - hostnames)
        if missing:
            problems.append(
                f"heartbeatUrls: no ping URL for {', '.join(missing)}: "
                f"pulumi config set --secret --path 'heartbeatUrls.{missing[0]}' <URL>"
            )
        if extra:
            problems.append(f"heartbeatUrls: {', '.join(extra)} is not a node: remove it")
    return problems


def _dns_problems(settings: Settings, credentials: Credentials) -> list[str]:
    dns = settings.dns
    problems = []
    needs = {
        "dnsTsigSecret": (dns is not None and dns.rfc2136 is not None, credentials.dns_tsig_secret, "dns.rfc2136"),
        "namecheapDdnsPassword": (
            dns is not None and dns.namecheap is not None,
            credentials.namecheap_ddns_password,
            "dns.namecheap",
        ),
    }
    if dns is not None and dns.rfc2136 is not None:
        zone = dns.rfc2136.zone
        if settings.domain != zone and not settings.domain.endswith(f".{zone}"):
            problems.append(
                f"dns.rfc2136.zone: {zone} does not contain the cluster domain {settings.domain}: "
                "give the zone the nodes' names live in"
            )
    if dns is not None and dns.namecheap is not None and dns.namecheap.domain is not None:
        registered = dns.namecheap.domain
        if settings.domain != registered and not settings.domain.endswith(f".{registered}"):
            problems.append(
                f"dns.namecheap.domain: {registered} does not contain the cluster domain {settings.domain}: "
                "give the domain registered at Namecheap that the cluster's names live in"
            )
    for key, (configured, value, setting) in needs.items():
        if configured and not value:
            problems.append(
                f"{key}: {setting} is configured but {key} is not set: pulumi config set --secret {key} <value>"
            )
        if value and not configured:
            problems.append(f"{key}: is set but {setting} is not configured: add it, or `pulumi config rm {key}`")
    return problems


def cluster_warnings(settings: Settings) -> list[str]:
    """Choices that work but that a user should make knowingly."""
    warnings = []
    if settings.ignition_base_url.startswith("http://"):
        warnings.append(
            "ignitionBaseUrl is plain http: anyone on the network path can change what nodes run (their boot "
            "scripts and Ignition configs are served there); serve them over https or only on a trusted LAN"
        )
    if settings.flatcar.base_url.startswith("http://"):
        warnings.append(
            "flatcar.baseUrl is plain http: nothing checks the kernel and initrd that nodes boot (the stick's iPXE "
            "verifies no signatures), so anyone on the network path can change what nodes run; use https, which "
            "iPXE checks against its built-in root certificates, or a mirror on a trusted LAN"
        )
    for i, chart in enumerate(settings.addons.charts):
        if chart.repo.startswith("http://"):
            warnings.append(
                f"addons.charts[{i}].repo ({chart.name}) is plain http: anyone on the network path to the repository "
                "can change the chart that runs in the cluster; use https, or a repository on a trusted LAN"
            )
    dumps = settings.datastore.dumps
    if dumps is not None and dumps.endpoint.startswith("http://"):
        warnings.append(
            "datastore.dumps.endpoint is plain http: the dumps (the cluster's whole state, its Secrets included) and "
            "the bucket's access key id travel in clear, and anyone on the network path can read them or change "
            "what a restore reads: use https"
        )
    if settings.flatcar.version == "current":
        warnings.append("flatcar.version is 'current': nodes boot whatever release is newest at boot time")
    if settings.datastore.type == "sqlite":
        warnings.append(
            "datastore.type is sqlite: the server is diskless, so the cluster's state is lost at every reboot"
        )
    dns = settings.dns
    if dns is not None and dns.rfc2136 is not None:
        fqdns = {settings.fqdn(n) for n in settings.nodes}
        static_servers = [n for n in settings.servers if n.address is not None]
        if in_zone(settings.api_server, dns.rfc2136.zone) and settings.api_server not in fqdns and not static_servers:
            warnings.append(
                f"apiServerAddress {settings.api_server} gets no DNS record: no server has a static address; "
                "give servers addresses, or leave apiServerAddress unset to use the first server's name"
            )
    vultr = settings.datastore.vultr
    if vultr is not None and vultr.dns_name is not None and datastore_record(settings) is None:
        rfc2136 = dns.rfc2136 if dns is not None else None
        where = f"not in zone {rfc2136.zone}" if rfc2136 else "in no zone that pulumi up keeps (dns.rfc2136 is not set)"
        warnings.append(
            f"datastore.vultr.dnsName {vultr.dns_name} is {where}, so pulumi up keeps no record for it: servers "
            "connect to that name, so point it at the datastore's address yourself"
        )
    for i, key in enumerate(settings.ssh_keys):
        if key.split()[:2] == PLACEHOLDER_SSH_KEY.split():
            warnings.append(
                f"sshKeys[{i}] is the dev stack's placeholder key, whose private half nobody has: no one can log in "
                f"to the nodes with it; put your own public key there: pulumi config set --path 'sshKeys[{i}]' "
                '"$(cat ~/.ssh/id_ed25519.pub)" --stack <stack>'
            )
    if settings.kube_vip is not None and not any(n.address for n in settings.servers):
        warnings.append(
            f"kubeVip: the servers take their addresses by DHCP, so whether {settings.api_server} is on their "
            "network and free cannot be checked: make sure it is, outside the DHCP server's range"
        )
    if settings.datastore.type == "etcd":
        warnings.append(
            "datastore.type is etcd: servers run from RAM; a server that reboots rejoins the others (its stale "
            "member removed first), but if every server is down at once the cluster's state is lost (its identity "
            "is not: the PKI and tokens are the program's); vultr or postgres keep the state outside the nodes"
        )
    warnings += updates_warnings(settings.updates, settings.datastore.type)
    warnings += registries_warnings(settings.registries)
    return warnings
