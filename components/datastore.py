"""Datastore: PostgreSQL on a Vultr VM that `pulumi up` makes and keeps, so that the cluster's state outlives
every node (datastore.type vultr). What it is made of is settings.datastore_plan's; this wires it to resources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from base import datastore_layout as D
from cloudinit.render import KeptSecrets, UserData, user_data, user_data_base64
from components.dns import rfc2136_record
from components.heartbeat import heartbeat_check
from pki.x509 import CertificateSpec
from providers.certificate import Certificate
from providers.datastore_login import DatastoreLogin
from providers.private_key import PrivateKey
from providers.random_id import RandomId
from providers.random_secret import RandomSecret
from providers.vultr.api import READY
from providers.vultr.firewall_group import FirewallGroup
from providers.vultr.firewall_rule import FirewallRule
from providers.vultr.instance import Instance
from providers.vultr.reserved_ip import ReservedIp
from settings.credentials import Credentials
from settings.datastore_plan import DatastorePlan, datastore_plan
from settings.heartbeat_plan import CheckSpec
from settings.model import Settings

PASSWORD_LENGTH = 32
CA_DAYS = 7300  # the CA and the server certificate last as long as a VM may: neither is renewed in place
CERTIFICATE_DAYS = 7300
LOGIN_TIMEOUT = 900  # seconds pulumi up waits for PostgreSQL to answer
VM = "vm"  # the summary's entry for the VM: its id and state


@dataclass(frozen=True)
class DatastoreArgs:
    settings: Settings
    credentials: Credentials
    known_ping_urls: Mapping[str, str] = field(default_factory=dict)  # heartbeat checks the API has (stack.services)


@dataclass(frozen=True)
class DatastoreAccess:
    """What a k3s server needs to reach the datastore: the endpoint (secret, with the password) and the CA."""

    endpoint: pulumi.Output[str]
    ca_pem: pulumi.Output[str]


@dataclass(frozen=True)
class _Tls:
    ca_key: PrivateKey
    ca: Certificate
    server_key: PrivateKey
    server: Certificate


class Datastore(pulumi.ComponentResource):
    """The VM with its reserved address, firewall, TLS, password and dumps; protected against loss."""

    access: DatastoreAccess

    def __init__(self, name: str, args: DatastoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ephemeros:index:Datastore", name, None, opts)
        self._name, self._settings, self._credentials = name, args.settings, args.credentials
        self._known_ping_urls = args.known_ping_urls
        plan = datastore_plan(args.settings)
        if args.credentials.vultr_api_key is None:
            raise ValueError("a Datastore needs vultrApiKey (settings.rules checks it)")
        self._api = {"api_url": plan.vultr.api_url, "api_key": args.credentials.vultr_api_key}
        self._child = pulumi.ResourceOptions(parent=self)
        kept = pulumi.ResourceOptions(parent=self, protect=True)  # losing these loses the database or its address
        # Made and recorded before any Vultr object, every one of which is marked with it (providers.vultr.account).
        self._owner_id = RandomId(f"{name}-owner", opts=self._child).hex
        rotation = args.settings.rotate.datastore_password
        password = RandomSecret(f"{name}-password", length=PASSWORD_LENGTH, generation=rotation, opts=self._child)
        vultr, owner_id = plan.vultr, self._owner_id
        reserved = ReservedIp(
            f"{name}-address", region=vultr.region, label=plan.label, owner_id=owner_id, **self._api, opts=kept
        )
        tls = self._tls(plan, reserved.address)
        firewall = FirewallGroup(
            f"{name}-firewall", description=plan.description, owner_id=owner_id, **self._api, opts=self._child
        )
        rules = self._firewall_rules(plan, firewall.id)
        instance = self._instance(plan, password.result, tls, firewall, reserved, kept)
        waits_for: list[pulumi.Resource] = [instance, *rules, *self._dns_record(plan, reserved.address)]
        login = self._login(plan, password.result, tls.ca, reserved.address, instance, waits_for)
        _warn_when_made_anew(instance.id, existing=tls.ca.id)
        host: pulumi.Input[str] = plan.vultr.dns_name or reserved.address
        # The servers get the endpoint once the login works (or was not to be checked).
        endpoint = pulumi.Output.all(host, password.result, login.id).apply(lambda v: D.endpoint(v[0], v[1]))
        self.access = DatastoreAccess(endpoint=pulumi.Output.secret(endpoint), ca_pem=tls.ca.pem)
        self.summary: dict[str, pulumi.Input[Any]] = {
            "address": reserved.address,
            "host": host,
            "port": D.POSTGRES_PORT,
            "database": D.DATABASE,
            "caCertificate": tls.ca.pem,
            VM: {"id": instance.id, "state": instance.ready.apply(_vm_state)},
            "lastCheck": login.checked,
        }
        self.register_outputs(self.summary)

    def _tls(self, plan: DatastorePlan, address: pulumi.Output[str]) -> _Tls:
        """The datastore's CA and the server certificate for its address (and dnsName)."""
        name, child = self._name, self._child
        ca_key = PrivateKey(f"{name}-ca-key", kind="ec-p256", opts=child)
        spec = CertificateSpec(plan.ca_name, ca=True, path_length=0, days=CA_DAYS)
        ca = Certificate(f"{name}-ca", spec=spec, key_pem=ca_key.pem, opts=child)
        server_key = PrivateKey(f"{name}-server-key", kind="ec-p256", opts=child)
        server = Certificate(
            f"{name}-server-certificate",
            spec=CertificateSpec(plan.hostname, usages=("server",), dns_names=plan.dns_names, days=CERTIFICATE_DAYS),
            ip_addresses=address.apply(lambda ip: (ip,)),
            key_pem=server_key.pem,
            issuer=(ca.pem, ca_key.pem),
            opts=child,
        )
        return _Tls(ca_key, ca, server_key, server)

    def _firewall_rules(self, plan: DatastorePlan, group_id: pulumi.Output[str]) -> list[FirewallRule]:
        return [
            FirewallRule(
                f"{self._name}-{rule.name}",
                group_id=group_id,
                protocol="tcp",
                subnet=str(rule.network.network_address),
                subnet_size=rule.network.prefixlen,
                port=str(rule.port),
                notes=f"ephemeros: {rule.what}",
                owner_id=self._owner_id,
                **self._api,
                opts=self._child,
            )
            for rule in plan.firewall_rules
        ]

    def _ping_url(self, suffix: str, check: CheckSpec | None) -> pulumi.Input[str | None]:
        if check is None:
            return None
        made = heartbeat_check(
            f"{self._name}-{suffix}", check, self._settings, self._credentials, self._child, self._known_ping_urls
        )
        return made.ping_url

    def _instance(
        self,
        plan: DatastorePlan,
        password: pulumi.Output[str],
        tls: _Tls,
        firewall: FirewallGroup,
        reserved: ReservedIp,
        kept: pulumi.ResourceOptions,
    ) -> Instance:
        """The VM, made with the user data rendered once; a warning when what it reads once has changed."""
        credentials, document = self._credentials, user_data(self._settings)
        secrets = pulumi.Output.all(
            tls.server.pem,
            tls.server_key.pem,
            self._ping_url("dumps-heartbeat", plan.dumps_check),
            self._ping_url("restore-heartbeat", plan.restore_check),
        ).apply(
            lambda v: KeptSecrets(
                server_certificate=v[0],
                server_key=v[1],
                dumps_access_key_id=credentials.dumps_access_key_id,
                dumps_secret_access_key=credentials.dumps_secret_access_key,
                dumps_heartbeat_url=v[2],
                restore_heartbeat_url=v[3],
            )
        )
        digest = pulumi.Output.unsecret(
            pulumi.Output.all(secrets, tls.ca_key.pem).apply(lambda v: _digest(document, *v))
        )
        backups, vultr = plan.vultr.backups, plan.vultr
        instance = Instance(
            f"{self._name}-vm",
            owner_id=self._owner_id,
            props={
                **self._api,
                "region": vultr.region,
                "plan": vultr.plan,
                "os": vultr.os,
                "hostname": plan.hostname,
                "label": plan.label,
                "tags": plan.tags,
                "user_data": pulumi.Output.all(password, secrets).apply(
                    lambda v: user_data_base64(document.document(v[0], v[1]))
                ),
                "user_data_digest": digest,
                "backups": backups.enabled,
                "backup_type": backups.schedule,
                "backup_hour": backups.hour,
                "backup_day_of_week": backups.day_of_week,
                "backup_day_of_month": backups.day_of_month,
                "firewall_group_id": firewall.id,
                "reserved_ip_id": reserved.id,
                "certificate_names": [reserved.address, *plan.dns_names],  # the names stay known at a preview
                "allow_replacement": vultr.allow_replacement,
            },
            opts=kept,
        )
        pulumi.Output.all(instance.output("created_user_data_digest"), digest).apply(_warn_if_changed)
        return instance

    def _login(
        self,
        plan: DatastorePlan,
        password: pulumi.Output[str],
        ca: Certificate,
        address: pulumi.Output[str],
        instance: Instance,
        waits_for: list[pulumi.Resource],
    ) -> DatastoreLogin:
        """The k3s role's login, checked once the VM, its firewall and its name are there (and again on a new VM)."""
        return DatastoreLogin(
            f"{self._name}-login",
            host=address,  # the check goes to the address, which the certificate names too: no DNS needed here
            port=D.POSTGRES_PORT,
            database=D.DATABASE,
            role=D.ROLE,
            ca_pem=ca.pem,
            password=password,
            check=plan.vultr.wait_for_postgres,
            timeout_seconds=LOGIN_TIMEOUT,
            instance_id=instance.id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=waits_for),
        )

    def _dns_record(self, plan: DatastorePlan, address: pulumi.Output[str]) -> list[pulumi.Resource]:
        """The A record of dnsName, when dns.rfc2136 serves its zone."""
        dns, secret = self._settings.dns, self._credentials.dns_tsig_secret
        rfc2136 = dns.rfc2136 if dns is not None else None
        if plan.record is None or rfc2136 is None or secret is None:
            return []
        record = rfc2136_record(
            f"{self._name}-dns-{plan.record}",
            rfc2136,
            secret,
            name=plan.record,
            type="A",
            values=address.apply(lambda ip: (ip,)),
            ttl=rfc2136.ttl,
            opts=self._child,
        )
        return [record]


def recorded_vm_id(summary: Any) -> str | None:
    """The VM's id in a datastore's summary as a run left it (the `datastore` stack output), if it has one."""
    vm = summary.get(VM) if isinstance(summary, Mapping) else None
    found = vm.get("id") if isinstance(vm, Mapping) else None
    return found if isinstance(found, str) and found else None


def _digest(document: UserData, secrets: KeptSecrets, key: str) -> str:
    return document.digest(secrets, key)


def _vm_state(ready: str) -> str:
    """The VM's state as the last `up` or `refresh` saw it: Vultr's three states when it was ready ("yes"), else
    what it was still waiting for."""
    return ", ".join(value for _, value in READY) if ready == "yes" else ready


def _warn_if_changed(digests: list[str | None]) -> None:
    """At preview: the VM's cloud-init user data changed since it was made, which applies to a new VM only."""
    created, rendered = digests
    if created is not None and created != rendered and pulumi.runtime.is_dry_run():
        pulumi.log.warn(
            "the datastore VM's cloud-init user data has changed since the VM was made (a setting it reads once: "
            "datastore.vultr.maxConnections, aptMirror, sshKeys, datastore.dumps, dumpsAccessKeyId, "
            "dumpsSecretAccessKey, the dumps' or the restore check's heartbeat check; or a new ephemeros): "
            "cloud-init runs only when a VM is made, so the running VM keeps what it was made with. The firewall, "
            "plan, label, tags, backups and the password change in place. To apply the rest, replace the VM on "
            "purpose after a dump (README: Replacing the datastore)."
        )


def _warn_when_made_anew(instance_id: pulumi.Output[str], existing: pulumi.Output[str]) -> pulumi.Output[None]:
    """At preview, for a datastore that exists (`existing`, its CA's id, is known): warn when the VM's id is not
    known yet, because the VM will be made anew, and so will the database."""

    def when_it_exists(_: str) -> pulumi.Output[None]:
        return instance_id.apply(_warn_if_unknown, run_with_unknowns=True)

    return existing.apply(when_it_exists)


def _warn_if_unknown(instance_id: Any) -> None:
    if isinstance(instance_id, pulumi.output.Unknown) and pulumi.runtime.is_dry_run():
        pulumi.log.warn(
            "the datastore VM will be made anew (it was deleted, or is replaced on purpose): a new VM is a new, "
            "empty database, and k3s servers that connect to it find no cluster state. pulumi up waits until "
            "PostgreSQL answers on it (unless datastore.vultr.waitForPostgres is false); then restore the newest "
            "dump before any server connects (README: The datastore, Dumps)."
        )
