"""DnsRecord: an RRset kept current at the zone's primary name server with RFC 2136 updates signed with TSIG,
through providers.rfc2136.

Create and update replace the whole RRset (so a retried create is harmless), require the name not to be an alias,
and mark the record as this resource's with a TXT record at _ephemeros.<name>; delete removes it only while the
mark is still this resource's own (a new resource that adopted the name, the cluster having been renamed, keeps
it). A new server, port or zone makes a new record there before the old one is deleted, so a failure on the new
server leaves the old records serving. `pulumi refresh` queries the primary and notices a record deleted or
changed outside Pulumi. The TSIG secret is a secret input and output (delete and refresh need it). Failures say
whether the key is unknown, its secret wrong, the update policy does not allow it, or the server does not serve
the zone at all.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from providers.props import OUTPUT, SECRET, Props, TypedResource, diff
from providers.rfc2136 import DnsUpdateError, PrimaryServer, owner_name

__all__ = ["DnsRecord", "DnsRecordProvider", "DnsUpdateError", "owner_name"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DnsRecordProps(Props):
    REPLACE_ON = ("server", "port", "zone", "name", "type")

    server: str
    port: int
    zone: str
    key_name: str
    algorithm: str
    secret: str = dataclasses.field(repr=False, metadata=SECRET)
    name: str  # fully qualified, without the final dot
    type: str
    values: tuple[str, ...]  # sorted
    ttl: int
    owner: str | None = dataclasses.field(default=None, metadata=OUTPUT)  # the mark at owner_name(name)

    def primary(self) -> PrimaryServer:
        return PrimaryServer(self.server, self.port, self.zone, self.key_name, self.algorithm, self.secret)


def _replace(props: dict[str, Any], owner: str) -> dict[str, Any]:
    record = dataclasses.replace(DnsRecordProps.from_props(props), owner=owner)
    record.primary().replace(record.name, record.type, record.values, record.ttl, owner)
    return record.to_props()


class DnsRecordProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"{props['name']}/{props['type']}", outs=_replace(props, secrets.token_hex(8)))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, DnsRecordProps)  # replaced: the new record first, then the old one deleted

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_replace(news, olds.get("owner") or secrets.token_hex(8)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        record = DnsRecordProps.from_props(props)
        served = record.primary().read(record.name, record.type)
        if served is None:
            return ReadResult(id_=None, outs={})
        ttl, values = served
        return ReadResult(id_=id_, outs=dataclasses.replace(record, ttl=ttl, values=values).to_props())

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        record = DnsRecordProps.from_props(props)
        record.primary().delete(record.name, record.type, record.owner)


class DnsRecord(TypedResource, module="ephemeros", name="DnsRecord"):
    """`name` (fully qualified, no final dot) of `type` with `values`, in `zone` at its primary `server`."""

    def __init__(
        self,
        resource_name: str,
        *,
        server: str,
        port: int,
        zone: str,
        key_name: str,
        algorithm: str,
        secret: pulumi.Input[str],
        name: str,
        type: str,
        values: pulumi.Input[Sequence[str]],
        ttl: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = DnsRecordProps.inputs(
            server=server,
            port=port,
            zone=zone,
            key_name=key_name,
            algorithm=algorithm,
            secret=secret,
            name=name,
            type=type,
            values=pulumi.Output.from_input(values).apply(lambda v: tuple(sorted(v))),
            ttl=ttl,
        )
        super().__init__(DnsRecordProvider(), resource_name, DnsRecordProps, inputs, opts)
