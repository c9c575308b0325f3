"""PrimaryServer: a typed client for a zone's primary name server, through RFC 2136 updates and queries signed with
TSIG, for the DnsRecord provider and the pre-flight check of dns.rfc2136.

BIND, Knot, PowerDNS and many routers accept these updates. Every answer acted on must carry a valid signature
(dnspython checks it). When an update is refused, one signed query for the zone's SOA says why: it fails with the
server's own TSIG error when the key is unknown (BADKEY) or the secret wrong (BADSIG); it answers without authority
when the server does not serve the zone; and it answers signed and with authority when the key is fine, so the
refusal is the zone's update policy's.
"""

from __future__ import annotations

import dataclasses
import socket
from enum import Enum

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.tsig
import dns.update

from providers.props import ProviderError
from settings.types import host_and_port

TIMEOUT = 10.0
SOA = dns.rdatatype.SOA
POLICY_HINT = (
    "its update policy (BIND: allow-update or update-policy; Knot: an acl with action update) must name the key"
)


class DnsUpdateError(ProviderError):
    """An update or query failed; the message names the record and says why. It never holds the secret."""


class Zone(Enum):
    """What a signed query for the zone's SOA showed."""

    SERVED = "served"  # signed, authoritative: the key works and the server is the zone's primary
    UNREACHABLE = "unreachable"
    UNKNOWN_KEY = "unknown key"  # BADKEY
    BAD_SIGNATURE = "bad signature"  # BADSIG: the secret is not the key's
    BAD_TIME = "bad time"  # BADTIME
    UNSIGNED = "unsigned"
    NOT_SERVED = "not served"  # no authoritative SOA for the zone


@dataclasses.dataclass(frozen=True)
class ZoneCheck:
    zone: Zone
    reason: str  # what the server answered, for Zone.UNREACHABLE and Zone.NOT_SERVED


@dataclasses.dataclass(frozen=True)
class PrimaryServer:
    address: str  # a host name, or an IP address (IPv6 without brackets)
    port: int
    zone: str
    key_name: str
    algorithm: str
    secret: str = dataclasses.field(repr=False)

    @property
    def where(self) -> str:
        return host_and_port(self.address, self.port)

    def _keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        name = dns.name.from_text(self.key_name)
        return {name: dns.tsig.Key(name, self.secret, dns.name.from_text(self.algorithm))}

    def _ip(self, subject: str) -> str:
        try:
            return str(socket.getaddrinfo(self.address, self.port, proto=socket.IPPROTO_TCP)[0][4][0])
        except OSError as error:
            raise DnsUpdateError(f"{subject}: cannot resolve the server {self.address}: {error}") from None

    def explain(self, check: ZoneCheck) -> str:
        """What a zone check found, naming the settings to look at."""
        key = f"TSIG key {self.key_name} ({self.algorithm})"
        return {
            Zone.SERVED: f"server {self.where} serves zone {self.zone} and accepts {key}",
            Zone.UNREACHABLE: f"no answer from {self.where}: {check.reason}",
            Zone.UNKNOWN_KEY: f"the server does not know {key} (it answered BADKEY): dns.rfc2136.keyName and "
            "dns.rfc2136.algorithm must name a key the server has",
            Zone.BAD_SIGNATURE: f"the server knows {key} but the signature does not match (it answered BADSIG): "
            "dnsTsigSecret is not that key's secret",
            Zone.BAD_TIME: "the server refused the signature's time (BADTIME): this machine's clock and the "
            "server's differ by more than five minutes",
            Zone.UNSIGNED: f"the answer is not signed, so it cannot be trusted: the server did not recognise {key}, "
            "or something on the way answered in its place",
            Zone.NOT_SERVED: f"server {self.where} is not authoritative for zone {self.zone}: check dns.rfc2136.zone "
            f"(the zone as the server serves it) and dns.rfc2136.server; {check.reason}",
        }[check.zone]

    def check_zone(self) -> ZoneCheck:
        """Ask for the zone's SOA, signed: whether the server serves the zone and accepts the key (read-only)."""
        query = dns.message.make_query(f"{self.zone}.", "SOA")
        keyring = self._keyring()
        query.use_tsig(keyring, keyname=next(iter(keyring)))
        try:
            answer = dns.query.tcp(query, self._ip(self.zone), port=self.port, timeout=TIMEOUT)
        except DnsUpdateError as error:
            return ZoneCheck(Zone.UNREACHABLE, str(error).split(": ", 1)[1])
        except (OSError, dns.exception.DNSException) as error:
            return ZoneCheck(_failed(error), str(error))
        zone = dns.name.from_text(self.zone)
        if not answer.had_tsig:
            return ZoneCheck(Zone.UNSIGNED, "")
        has_soa = any(r.name == zone and r.rdtype == SOA for r in answer.answer)
        if answer.rcode() != dns.rcode.NOERROR or not answer.flags & dns.flags.AA or not has_soa:
            said = dns.rcode.to_text(answer.rcode())
            return ZoneCheck(Zone.NOT_SERVED, f"it answered {said}{'' if has_soa else ' without the SOA'}")
        return ZoneCheck(Zone.SERVED, "")

    def _send(self, record: str, message: dns.message.Message) -> dns.message.Message:
        """Send a signed message; the answer must carry a valid signature (dnspython checks it)."""
        try:
            return dns.query.tcp(message, self._ip(f"DNS record {record}"), port=self.port, timeout=TIMEOUT)
        except (OSError, dns.exception.DNSException) as error:
            outcome = _failed(error)
            reason = self.explain(ZoneCheck(outcome, str(error)))
            if outcome is Zone.UNSIGNED:
                reason = f"{reason} ({error})"
            raise DnsUpdateError(f"DNS record {record}: {reason}") from None

    def _check(self, record: str, answer: dns.message.Message, action: str) -> None:
        rcode = answer.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        said = f"{action} answered {dns.rcode.to_text(rcode)}"
        if rcode in (dns.rcode.NOTAUTH, dns.rcode.REFUSED):
            check = self.check_zone()  # once: the key, the zone, or else the update policy
            if check.zone is Zone.SERVED:
                reason = f"{said}: the server does not let key {self.key_name} update this name: {POLICY_HINT}"
            elif check.zone is Zone.UNREACHABLE:
                reason = said
            else:
                reason = self.explain(check)
            raise DnsUpdateError(f"DNS record {record}: {reason}")
        name = record.split()[0]
        hint = {
            dns.rcode.NOTZONE: f"the name is not in zone {self.zone}",
            dns.rcode.YXRRSET: f"{name} is an alias (CNAME), and an address record cannot stand beside it: remove "
            "the CNAME or choose another name",
        }.get(rcode, "")
        raise DnsUpdateError(f"DNS record {record}: {said}{': ' + hint if hint else ''}")

    def _update(self, name: str, *, require_no_alias: bool) -> dns.update.UpdateMessage:
        """A signed update of the zone; `require_no_alias`: it requires `name` not to be an alias, as an address
        added beside a CNAME would be ignored without an error (RFC 2136, 3.4.2.2)."""
        keyring = self._keyring()
        update = dns.update.UpdateMessage(self.zone, keyring=keyring, keyname=next(iter(keyring)))
        if require_no_alias:
            update.absent(f"{name}.", "CNAME")
        return update

    def _apply(self, name: str, rtype: str, update: dns.update.UpdateMessage, action: str) -> None:
        record = f"{name} {rtype}"
        answer = self._send(record, update)
        if action == "the deletion" and answer.rcode() == dns.rcode.NXRRSET:
            return  # the owner mark is another owner's (or gone): the record is not this resource's to delete
        self._check(record, answer, action)

    def replace(self, name: str, rtype: str, values: tuple[str, ...], ttl: int, owner: str) -> None:
        """Make `values` the name's RRset, and mark it as `owner`'s."""
        update = self._update(name, require_no_alias=True)
        update.replace(f"{name}.", ttl, rtype, *values)
        update.replace(owner_name(name), ttl, "TXT", f'"{owner}"')
        self._apply(name, rtype, update, "the update")

    def delete(self, name: str, rtype: str, owner: str | None) -> None:
        """Delete the RRset, unless another owner has marked it since (a resource that adopted the name)."""
        update = self._update(name, require_no_alias=False)
        if owner is not None:
            update.present(owner_name(name), dns.rdata.from_text("IN", "TXT", f'"{owner}"'))
            update.delete(owner_name(name), "TXT")
        update.delete(f"{name}.", rtype)
        self._apply(name, rtype, update, "the deletion")

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


def _failed(error: OSError | dns.exception.DNSException) -> Zone:
    """Which outcome a failed signed exchange is: the server's TSIG error, an unsigned answer, or no answer."""
    if isinstance(error, dns.tsig.PeerBadKey):
        return Zone.UNKNOWN_KEY
    if isinstance(error, dns.tsig.PeerBadSignature):
        return Zone.BAD_SIGNATURE
    if isinstance(error, dns.tsig.PeerBadTime):
        return Zone.BAD_TIME
    if isinstance(error, dns.message.UnknownTSIGKey | dns.tsig.BadSignature):
        return Zone.UNSIGNED  # signed, but not with this key: as good as unsigned
    if isinstance(error, dns.exception.DNSException) and "TSIG" in str(error):
        return Zone.UNSIGNED  # an unsigned answer to a signed question
    return Zone.UNREACHABLE


def owner_name(name: str) -> str:
    """Where a managed name's owner mark is: a TXT record beside it, at _ephemeros.<name>."""
    return f"_ephemeros.{name}."
