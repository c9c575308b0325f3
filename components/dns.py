"""DnsRecords: the records known at deploy time (see settings.dns_plan), kept over RFC 2136."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from providers.dns_record import DnsRecord
from settings.credentials import Credentials
from settings.dns_plan import deploy_records
from settings.model import Rfc2136, Settings


def rfc2136_record(
    resource_name: str,
    rfc2136: Rfc2136,
    secret: pulumi.Input[str],
    *,
    name: str,
    type: str,
    values: pulumi.Input[Sequence[str]],
    ttl: int,
    opts: pulumi.ResourceOptions,
) -> DnsRecord:
    """A DnsRecord kept on the server and zone that `dns.rfc2136` names."""
    return DnsRecord(
        resource_name,
        server=rfc2136.server,
        port=rfc2136.port,
        zone=rfc2136.zone,
        key_name=rfc2136.key_name,
        algorithm=rfc2136.algorithm,
        secret=secret,
        name=name,
        type=type,
        values=values,
        ttl=ttl,
        opts=opts,
    )


@dataclass(frozen=True)
class DnsRecordsArgs:
    settings: Settings
    credentials: Credentials


class DnsRecords(pulumi.ComponentResource):
    """One DnsRecord per name: nodes with static addresses, and the API server's name."""

    records: dict[str, DnsRecord]

    def __init__(self, name: str, args: DnsRecordsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ephemeros:index:DnsRecords", name, None, opts)
        dns = args.settings.dns
        rfc2136 = dns.rfc2136 if dns is not None else None
        secret = args.credentials.dns_tsig_secret
        if rfc2136 is None or secret is None:
            raise ValueError("DnsRecords needs dns.rfc2136 and dnsTsigSecret (settings.rules checks both)")
        self.records = {
            record.name: rfc2136_record(
                f"{name}-{record.name}-{record.type}",
                rfc2136,
                secret,
                name=record.name,
                type=record.type,
                values=record.values,
                ttl=record.ttl,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for record in deploy_records(args.settings)
        }
        self.register_outputs({"names": sorted(self.records)})
