"""DnsRecord: an RRset kept current at the zone's primary name server with RFC 2136 updates signed with TSIG.

BIND, Knot, PowerDNS and many routers accept these updates. Create and update replace the whole RRset (so a
retried create is harmless); delete removes it; `pulumi refresh` queries the primary and notices a record
deleted or changed outside Pulumi. The TSIG secret is a secret input and output (delete and refresh need it).
"""

from __future__ import annotations

import dataclasses
import socket
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from providers.props import SECRET, Props, ProviderError, TypedResource, diff

TIMEOUT = 10.0
KEY_HINT = "the server refused the TSIG key: check dns.rfc2136.keyName, dns.rfc2136.algorithm and dnsTsigSecret"


class DnsUpdateError(ProviderError):
    """An update or query failed; the message names the record and says why. It never holds the secret."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DnsRecordProps(Props):
    REPLACE_ON = ("server", "port", "zone", "name", "type")

    server: str
    port: int
    zone: str
    key_name: str
    algorithm: str
    secret: str = dataclasses.field(metadata=SECRET)
    name: str  # fully qualified, without the final dot
    type: str
    values: tuple[str, ...]  # sorted
    ttl: int


@dataclasses.dataclass(frozen=True)
class PrimaryServer:
    address: str
    port: int
    zone: str
    key_name: str
    algorithm: str
    secret: str

    @classmethod
    def of(cls, record: DnsRecordProps) -> PrimaryServer:
        return cls(record.server, record.port, record.zone, record.key_name, record.algorithm, record.secret)

    def _keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        name = dns.name.from_text(self.key_name)
        return {name: dns.tsig.Key(name, self.secret, dns.name.from_text(self.algorithm))}

    def _ip(self, record: str) -> str:
        try:
            return str(socket.getaddrinfo(self.address, self.port, proto=socket.IPPROTO_TCP)[0][4][0])
        except OSError as error:
            raise DnsUpdateError(f"DNS record {record}: cannot resolve the server {self.address}: {error}") from None

    def _send(self, record: str, message: dns.message.Message) -> dns.message.Message:
        try:
            return dns.query.tcp(message, self._ip(record), port=self.port, timeout=TIMEOUT)
        except (dns.tsig.PeerError, dns.tsig.BadSignature) as error:
            raise DnsUpdateError(f"DNS record {record}: {KEY_HINT} ({error})") from None
        except (OSError, dns.exception.DNSException) as error:
            raise DnsUpdateError(f"DNS record {record}: no answer from {self.address}:{self.port}: {error}") from None

    def _check(self, record: str, answer: dns.message.Message, action: str) -> None:
        rcode = answer.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        hint = {
            dns.rcode.NOTAUTH: KEY_HINT,
            dns.rcode.REFUSED: "the server does not let this key update the zone (allow-update / update-policy)",
            dns.rcode.NOTZONE: f"the name is not in zone {self.zone}",
        }.get(rcode, "")
        raise DnsUpdateError(
            f"DNS record {record}: {action} answered {dns.rcode.to_text(rcode)}{': ' + hint if hint else ''}"
        )

    def _update(self) -> dns.update.UpdateMessage:
        keyring = self._keyring()
        return dns.update.UpdateMessage(self.zone, keyring=keyring, keyname=next(iter(keyring)))

    def replace(self, name: str, rtype: str, values: tuple[str, ...], ttl: int) -> None:
        update = self._update()
        update.replace(f"{name}.", ttl, rtype, *values)
        self._check(f"{name} {rtype}", self._send(f"{name} {rtype}", update), "the update")

    def delete(self, name: str, rtype: str) -> None:
        update = self._update()
        update.delete(f"{name}.", rtype)
        self._check(f"{name} {rtype}", self._send(f"{name} {rtype}", update), "the deletion")

    def read(self, name: str, rtype: str) -> tuple[int, tuple[str, ...]] | None:
        """The RRset's TTL and values as the primary serves them, or None when it has none."""
        keyring = self._keyring()
        query = dns.message.make_query(f"{name}.", rtype)
        query.use_tsig(keyring, keyname=next(iter(keyring)))
        answer = self._send(f"{name} {rtype}", query)
        if answer.rcode() == dns.rcode.NXDOMAIN:
            return None
        self._check(f"{name} {rtype}", answer, "the query")
        for rrset in answer.answer:
            if rrset.rdtype == dns.rdatatype.from_text(rtype):
                return rrset.ttl, tuple(sorted(rdata.to_text() for rdata in rrset))
        return None


def _replace(props: dict[str, Any]) -> dict[str, Any]:
    record = DnsRecordProps.from_props(props)
    PrimaryServer.of(record).replace(record.name, record.type, record.values, record.ttl)
    return record.to_props()


class DnsRecordProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"{props['name']}/{props['type']}", outs=_replace(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, DnsRecordProps, delete_before_replace=True)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_replace(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        record = DnsRecordProps.from_props(props)
        served = PrimaryServer.of(record).read(record.name, record.type)
        if served is None:
            return ReadResult(id_=None, outs={})
        ttl, values = served
        return ReadResult(id_=id_, outs=dataclasses.replace(record, ttl=ttl, values=values).to_props())

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        record = DnsRecordProps.from_props(props)
        PrimaryServer.of(record).delete(record.name, record.type)


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
        values: tuple[str, ...],
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
            values=tuple(sorted(values)),
            ttl=ttl,
        )
        super().__init__(DnsRecordProvider(), resource_name, DnsRecordProps, inputs, opts)
