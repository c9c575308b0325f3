"""Datastore: PostgreSQL on a Vultr VM that `pulumi up` makes and keeps, so that the cluster's state outlives
every node (datastore.type vultr)."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

import pulumi

from base import datastore_layout as D
from cloudinit.render import DatastoreSecrets, user_data, user_data_base64, user_data_digest
from components.dns import rfc2136_record
from components.heartbeat import heartbeat_check
from pki.x509 import CertificateSpec
from providers.certificate import Certificate
from providers.datastore_login import DatastoreLogin
from providers.private_key import PrivateKey
from providers.random_secret import RandomSecret
from providers.vultr.firewall_group import FirewallGroup
from providers.vultr.firewall_rule import FirewallRule
from providers.vultr.instance import Instance
from providers.vultr.reserved_ip import ReservedIp
from settings.credentials import Credentials
from settings.datastore import Vultr
from settings.dns_plan import datastore_record
from settings.heartbeat_plan import dumps_check
from settings.model import Settings

PASSWORD_LENGTH = 32
CA_DAYS = 7300  # the CA and the server certificate last as long as a VM may: neither is renewed in place
CERTIFICATE_DAYS = 7300
LOGIN_TIMEOUT = 900  # seconds pulumi up waits for PostgreSQL to answer


@dataclass(frozen=True)
class DatastoreArgs:
    settings: Settings
    credentials: Credentials


@dataclass(frozen=True)
class DatastoreAccess:
    """What a k3s server needs to reach the datastore: the endpoint (secret, with the password) and the CA."""

    endpoint: pulumi.Output[str]
    ca_pem: pulumi.Output[str]


def _vultr(settings: Settings) -> Vultr:
    if settings.datastore.vultr is None:
        raise ValueError("a Datastore needs datastore.vultr (settings.datastore checks it)")
    return settings.datastore.vultr


def _slug(network: IPv4Network) -> str:
    return str(network).replace(".", "-").replace("/", "-")


class Datastore(pulumi.ComponentResource):
    """The VM with its reserved address, firewall, TLS, password and dumps; protected against loss."""

    access: DatastoreAccess

    def __init__(self, name: str, args: DatastoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ephemeros:index:Datastore", name, None, opts)
        settings, credentials = args.settings, args.credentials
        vultr = _vultr(settings)
        if credentials.vultr_api_key is None:
            raise ValueError("a Datastore needs vultrApiKey (settings.rules checks it)")
        cluster = settings.cluster_name
        api = {"api_url": vultr.api_url, "api_key": credentials.vultr_api_key}
        child = pulumi.ResourceOptions(parent=self)
        kept = pulumi.ResourceOptions(parent=self, protect=True)  # losing these loses the database or its address
        hostname = vultr.hostname or f"{cluster}-datastore"
        label = vultr.label or f"ephemeros {cluster} datastore"

        password = RandomSecret(
            f"{name}-password", length=PASSWORD_LENGTH, generation=settings.rotate.datastore_password, opts=child
        ).result
        reserved = ReservedIp(f"{name}-address", region=vultr.region, label=label, **api, opts=kept)
        address = reserved.address
        ca_key = PrivateKey(f"{name}-ca-key", kind="ec-p256", opts=child)
        ca = Certificate(
            f"{name}-ca",
            spec=CertificateSpec(f"ephemeros {cluster} datastore CA", ca=True, path_length=0, days=CA_DAYS),
            key_pem=ca_key.pem,
            opts=child,
        )
        server_key = PrivateKey(f"{name}-server-key", kind="ec-p256", opts=child)
        dns_names = (vultr.dns_name,) if vultr.dns_name else ()
        server = Certificate(
            f"{name}-server-certificate",
            spec=CertificateSpec(hostname, usages=("server",), dns_names=dns_names, days=CERTIFICATE_DAYS),
            ip_addresses=address.apply(lambda ip: (ip,)),
            key_pem=server_key.pem,
            issuer=(ca.pem, ca_key.pem),
            opts=child,
        )

        firewall = FirewallGroup(f"{name}-firewall", description=f"ephemeros {cluster} datastore", **api, opts=child)
        rules = [
            FirewallRule(
                f"{name}-{what}-{_slug(network)}",
                group_id=firewall.id,
                protocol="tcp",
                subnet=str(network.network_address),
                subnet_size=network.prefixlen,
                port=port,
                notes=f"ephemeros: {what}",
                **api,
                opts=child,
            )
            for what, port, sources in (
                ("postgres", str(D.POSTGRES_PORT), vultr.allowed_sources),
                ("ssh", str(D.SSH_PORT), vultr.admin_sources),
            )
            for network in sources
        ]

        dumps_url: pulumi.Input[str | None] = None
        check = dumps_check(settings)
        if check is not None:
            dumps_url = heartbeat_check(f"{name}-dumps-heartbeat", check, settings, credentials, child).ping_url

        def secrets(values: list[Any]) -> DatastoreSecrets:
            secret, certificate, key, ping = values
            return DatastoreSecrets(
                password=secret,
                server_certificate=certificate,
                server_key=key,
                dumps_access_key_id=credentials.dumps_access_key_id,
                dumps_secret_access_key=credentials.dumps_secret_access_key,
                dumps_heartbeat_url=ping,
            )

        made = pulumi.Output.all(password, server.pem, server_key.pem, dumps_url).apply(secrets)
        digest = pulumi.Output.unsecret(made.apply(lambda s: user_data_digest(settings, s)))
        backups = vultr.backups
        instance = Instance(
            f"{name}-vm",
            props={
                **api,
                "region": vultr.region,
                "plan": vultr.plan,
                "os": vultr.os,
                "hostname": hostname,
                "label": label,
                "tags": ("ephemeros", *vultr.tags),
                "user_data": made.apply(lambda s: user_data_base64(user_data(settings, s))),
                "user_data_digest": digest,
                "backups": backups.enabled,
                "backup_type": backups.schedule,
                "backup_hour": backups.hour,
                "backup_day_of_week": backups.day_of_week,
                "backup_day_of_month": backups.day_of_month,
                "firewall_group_id": firewall.id,
                "reserved_ip_id": reserved.id,
                "certificate_names": address.apply(lambda ip: (ip, *dns_names)),
                "allow_replacement": vultr.allow_replacement,
            },
            opts=kept,
        )
        pulumi.Output.all(instance.output("created_user_data_digest"), digest).apply(_warn_if_changed)

        waits_for: list[pulumi.Resource] = [instance, *rules]
        rfc2136 = settings.dns.rfc2136 if settings.dns is not None else None
        record = datastore_record(settings)
        if record is not None and rfc2136 is not None and credentials.dns_tsig_secret is not None:
            waits_for.append(
                rfc2136_record(
                    f"{name}-dns-{record}",
                    rfc2136,
                    credentials.dns_tsig_secret,
                    name=record,
                    type="A",
                    values=address.apply(lambda ip: (ip,)),
                    ttl=rfc2136.ttl,
                    opts=child,
                )
            )
        login = DatastoreLogin(
            f"{name}-login",
            host=address,  # the check goes to the address, which the certificate names too: no DNS needed here
            port=D.POSTGRES_PORT,
            database=D.DATABASE,
            role=D.ROLE,
            ca_pem=ca.pem,
            password=password,
            check=vultr.wait_for_postgres,
            timeout_seconds=LOGIN_TIMEOUT,
            opts=pulumi.ResourceOptions(parent=self, depends_on=waits_for),
        )
        host: pulumi.Input[str] = vultr.dns_name or address
        # The servers get the endpoint once the login works (or was not to be checked).
        endpoint = pulumi.Output.all(host, password, login.id).apply(lambda v: D.endpoint(v[0], v[1]))
        self.access = DatastoreAccess(endpoint=pulumi.Output.secret(endpoint), ca_pem=ca.pem)
        self.summary: dict[str, pulumi.Input[Any]] = {
            "address": address,
            "host": host,
            "port": D.POSTGRES_PORT,
            "database": D.DATABASE,
            "caCertificate": ca.pem,
            "vm": instance.ready,
            "lastCheck": login.checked,
        }
        self.register_outputs(self.summary)


def _warn_if_changed(digests: list[str | None]) -> None:
    """At preview: the VM's cloud-init user data changed since it was made, which applies to a new VM only."""
    created, rendered = digests
    if created is not None and created != rendered and pulumi.runtime.is_dry_run():
        pulumi.log.warn(
            "the datastore VM's cloud-init user data has changed since the VM was made (a setting it reads once: "
            "datastore.vultr.maxConnections, aptMirror, sshKeys, datastore.dumps, dumpsAccessKeyId, "
            "dumpsSecretAccessKey, the dumps' heartbeat check; or a new ephemeros): cloud-init runs only "
            "when a VM is made, so the running VM keeps what it was made with. The firewall, plan, label, tags, "
            "backups and the password change in place. To apply the rest, replace the VM on purpose after a dump "
            "(README: Replacing the datastore)."
        )
