"""DnsRecord: an RRset kept current at the zone's primary name server with RFC 2136 updates signed with TSIG.

BIND, Knot, PowerDNS and many routers accept these updates. Create and update replace the whole RRset (so a
retried create is harmless), require the name not to be an alias, and mark the record as this resource's with a
TXT record at _ephemeros.<name>; delete removes it only while the mark is still this resource's own (a new
resource that adopted the name, the cluster having been renamed, keeps it). `pulumi refresh` queries the primary
and notices a record deleted or changed outside Pulumi. The TSIG secret is a secret input and output (delete
and refresh need it). Failures say whether the key was refused, the update policy does not allow it, or the
server does not serve the zone at all.
"""

from __future__ import annotations

import dataclasses
import secrets
import socket
from collections.abc import Sequence
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from providers.props import OUTPUT, SECRET, Props, ProviderError, TypedResource, diff

TIMEOUT = 10.0


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
    secret: str = dataclasses.field(repr=False, metadata=SECRET)
    name: str  # fully qualified, without the final dot
    type: str
    values: tuple[str, ...]  # sorted
    ttl: int
    owner: str | None = dataclasses.field(default=None, metadata=OUTPUT)  # the mark at owner_name(name)


@dataclasses.dataclass(frozen=True)
class PrimaryServer:
    address: str
    port: int
    zone: str
    key_name: str
    algorithm: str
    secret: str = dataclasses.field(repr=False)

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

    def _key_hint(self) -> str:
        return (
            f"the server did not accept TSIG key {self.key_name}: either dns.rfc2136.keyName, dns.rfc2136.algorithm "
            "or dnsTsigSecret is wrong, or the key is right and the zone's update policy does not list it (Knot "
            "answers so for a key its acl does not allow)"
        )

    def _not_authoritative(self) -> bool:
        """Whether the server does not answer for the zone's SOA with authority (asked without a signature)."""
        query = dns.message.make_query(f"{self.zone}.", "SOA")
        try:
            answer = dns.query.tcp(query, self._ip(self.zone), port=self.port, timeout=TIMEOUT)
        except (OSError, dns.exception.DNSException):
            return False  # the failure at hand says more than this one would
        zone = dns.name.from_text(self.zone)
        has_soa = any(r.name == zone and r.rdtype == dns.rdatatype.SOA for r in answer.answer)
        return answer.rcode() != dns.rcode.NOERROR or not answer.flags & dns.flags.AA or not has_soa

    def _fail(self, record: str, reason: str) -> DnsUpdateError:
        """An error for `record`, unless the real reason is that the server does not serve the zone."""
        if self._not_authoritative():
            reason = (
                f"server {self.address}:{self.port} is not authoritative for zone {self.zone}: check "
                "dns.rfc2136.zone (the zone as the server serves it) and dns.rfc2136.server"
            )
        return DnsUpdateError(f"DNS record {record}: {reason}")

    def _send(self, record: str, message: dns.message.Message) -> dns.message.Message:
        """Send a signed message; the answer must carry a valid signature (dnspython checks it)."""
        try:
            return dns.query.tcp(message, self._ip(record), port=self.port, timeout=TIMEOUT)
        except (dns.tsig.PeerError, dns.tsig.BadSignature) as error:
            raise self._fail(record, f"{self._key_hint()} ({error})") from None
        except dns.message.UnknownTSIGKey as error:
            raise self._fail(record, f"the answer is signed with another key ({error})") from None
        except (OSError, dns.exception.DNSException) as error:
            if "TSIG" in str(error):  # an unsigned answer to a signed question
                raise self._fail(record, f"the answer is not signed, so it cannot be trusted ({error})") from None
            raise DnsUpdateError(f"DNS record {record}: no answer from {self.address}:{self.port}: {error}") from None

    def _check(self, record: str, answer: dns.message.Message, action: str) -> None:
        rcode = answer.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        name = record.split()[0]
        hint = {
            dns.rcode.NOTAUTH: self._key_hint(),
            dns.rcode.REFUSED: f"the server does not let key {self.key_name} update this name: its update policy "
            "(BIND: allow-update or update-policy; Knot: an acl with action update) must name the key",
            dns.rcode.NOTZONE: f"the name is not in zone {self.zone}",
            dns.rcode.YXRRSET: f"{name} is an alias (CNAME), and an address record cannot stand beside it: remove "
            "the CNAME or choose another name",
        }.get(rcode, "")
        reason = f"{action} answered {dns.rcode.to_text(rcode)}{': ' + hint if hint else ''}"
        if rcode in (dns.rcode.NOTAUTH, dns.rcode.REFUSED):
            raise self._fail(record, reason)
        raise DnsUpdateError(f"DNS record {record}: {reason}")

    def _update(self, name: str) -> dns.update.UpdateMessage:
        """A signed update that requires `name` not to be an alias: an address added beside a CNAME would be
        ignored without an error (RFC 2136, 3.4.2.2)."""
        keyring = self._keyring()
        update = dns.update.UpdateMessage(self.zone, keyring=keyring, keyname=next(iter(keyring)))
        update.absent(f"{name}.", "CNAME")
        return update

    def replace(self, name: str, rtype: str, values: tuple[str, ...], ttl: int, owner: str) -> None:
        """Make `values` the name's RRset, and mark it as `owner`'s."""
        update = self._update(name)
        update.replace(f"{name}.", ttl, rtype, *values)
        update.replace(owner_name(name), ttl, "TXT", f'"{owner}"')
        self._check(f"{name} {rtype}", self._send(f"{name} {rtype}", update), "the update")

    def delete(self, name: str, rtype: str, owner: str | None) -> None:
        """Delete the RRset, unless another owner has marked it since (a resource that adopted the name)."""
        keyring = self._keyring()
        update = dns.update.UpdateMessage(self.zone, keyring=keyring, keyname=next(iter(keyring)))
        if owner is not None:
            update.present(owner_name(name), dns.rdata.from_text("IN", "TXT", f'"{owner}"'))
            update.delete(owner_name(name), "TXT")
        update.delete(f"{name}.", rtype)
        answer = self._send(f"{name} {rtype}", update)
        if answer.rcode() == dns.rcode.NXRRSET:
            return  # the mark is another owner's (or gone): the record is not this resource's to delete
        self._check(f"{name} {rtype}", answer, "the deletion")

    def read(self, name: str, rtype: str) -> tuple[int, tuple[str, ...]] | None:
        """The RRset's TTL and values as the primary serves them, or None when it has none.

        Only an RRset owned by `name` itself counts: for an alias the answer holds its target's records.
        """
        keyring = self._keyring()
        query = dns.message.make_query(f"{name}.", rtype)
        query.use_tsig(keyring, keyname=next(iter(keyring)))
        answer = self._send(f"{name} {rtype}", query)
        if answer.rcode() == dns.rcode.NXDOMAIN:
            return None
        self._check(f"{name} {rtype}", answer, "the query")
        owner = dns.name.from_text(name)
        for rrset in answer.answer:
            if rrset.name == owner and rrset.rdtype == dns.rdatatype.from_text(rtype):
                return rrset.ttl, tuple(sorted(rdata.to_text() for rdata in rrset))
        return None


def owner_name(name: str) -> str:
    """Where a managed name's owner mark is: a TXT record beside it, at _ephemeros.<name>."""
    return f"_ephemeros.{name}."


def _replace(props: dict[str, Any], owner: str) -> dict[str, Any]:
    record = dataclasses.replace(DnsRecordProps.from_props(props), owner=owner)
    PrimaryServer.of(record).replace(record.name, record.type, record.values, record.ttl, owner)
    return record.to_props()


class DnsRecordProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"{props['name']}/{props['type']}", outs=_replace(props, secrets.token_hex(8)))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, DnsRecordProps, delete_before_replace=True)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_replace(news, olds.get("owner") or secrets.token_hex(8)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        record = DnsRecordProps.from_props(props)
        served = PrimaryServer.of(record).read(record.name, record.type)
        if served is None:
            return ReadResult(id_=None, outs={})
        ttl, values = served
        return ReadResult(id_=id_, outs=dataclasses.replace(record, ttl=ttl, values=values).to_props())

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        record = DnsRecordProps.from_props(props)
        PrimaryServer.of(record).delete(record.name, record.type, record.owner)


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
