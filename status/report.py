"""What `make status` shows, from what it read: per node its check's status and last ping, what it booted (from
its newest heartbeat body) against what `pulumi up` last made (the stack's `nodes` output), whether it needs a
reboot; then the order to reboot in. Pure: no network, no Pulumi.

A heartbeat body reads `<hostname>: <health>; config <12 hex>; boot <12 hex>; flatcar <version>; k3s version
<version>`; it is read field by field, so a node that reports fewer fields (an older one: no boot, no flatcar)
leaves those unknown. A field the `nodes` output lacks is unknown too, never a mismatch; a Flatcar version of
`current` accepts any version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DIGEST = 12  # hex digits of a digest that a heartbeat reports
LATE = ("grace", "down")  # check statuses that make the exit status non-zero
FIELDS = ("config", "boot", "flatcar", "k3s")  # what a node reports booting, in the order shown


@dataclass(frozen=True)
class Heartbeat:
    """One heartbeat body, read leniently: what is not there is None."""

    hostname: str | None = None
    health: str | None = None
    booted: Mapping[str, str] = field(default_factory=dict)  # config, boot, flatcar, k3s


def parse_body(body: str) -> Heartbeat:
    """`<hostname>: <health>; <field> <value>; ...` into its parts; unknown fields are ignored."""
    head, sep, rest = body.strip().partition(": ")
    if not sep:
        return Heartbeat()
    parts = [part.strip() for part in rest.split(";")]
    booted: dict[str, str] = {}
    for part in parts[1:]:
        if part.startswith("k3s version "):
            booted["k3s"] = part.removeprefix("k3s version ").split()[0]
            continue
        name, _, value = part.partition(" ")
        if name in ("config", "boot", "flatcar") and value:
            booted[name] = value.split()[0]
    return Heartbeat(hostname=head, health=parts[0] or None, booted=booted)


def expected(summary: Mapping[str, Any]) -> dict[str, str]:
    """What `pulumi up` last made for a node, from its entry in the `nodes` output: the fields it has."""
    made: dict[str, str] = {}
    for name, key in (("config", "configDigest"), ("boot", "bootDigest")):
        if isinstance(summary.get(key), str) and summary[key]:
            made[name] = summary[key][:DIGEST]
    for name, key in (("flatcar", "flatcarVersion"), ("k3s", "k3sVersion")):
        if isinstance(summary.get(key), str) and summary[key]:
            made[name] = summary[key]
    return made


def compare(name: str, booted: str | None, made: str | None) -> str:
    """ "ok", "old" or "unknown"."""
    if booted is None or made is None:
        return "unknown"
    if name == "flatcar" and made == "current":
        return "ok"
    if name in ("config", "boot"):
        return "ok" if booted[:DIGEST] == made[:DIGEST] else "old"
    return "ok" if booted == made else "old"


@dataclass(frozen=True)
class NodeStatus:
    hostname: str
    role: str
    check: str | None  # the check's status (new, up, grace, down, paused, started); None: no check found
    last_ping: datetime | None
    heartbeat: Heartbeat | None  # the newest ping with a body
    made: Mapping[str, str]

    def verdict(self, name: str) -> str:
        booted = self.heartbeat.booted.get(name) if self.heartbeat is not None else None
        return compare(name, booted, self.made.get(name))

    @property
    def reboot_needed(self) -> bool:
        return any(self.verdict(name) == "old" for name in FIELDS)

    @property
    def late(self) -> bool:
        return self.check in LATE


def age(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "-"
    seconds = max(0, int((now - since).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def _cell(node: NodeStatus, name: str) -> str:
    booted = node.heartbeat.booted.get(name) if node.heartbeat is not None else None
    made = node.made.get(name)
    verdict = node.verdict(name)
    if verdict == "old":
        return f"{booted} (now {made})"
    return booted or "?"


def reboot_order(nodes: Sequence[NodeStatus]) -> str:
    """Servers one at a time, then agents."""
    servers = [n.hostname for n in nodes if n.reboot_needed and n.role == "server"]
    agents = [n.hostname for n in nodes if n.reboot_needed and n.role != "server"]
    if not servers and not agents:
        return "no node needs a reboot for what pulumi up last made"
    steps = []
    if servers:
        steps.append(f"servers one at a time, each back up before the next: {', then '.join(servers)}")
    if agents:
        steps.append(f"{'then ' if servers else ''}agents: {', '.join(agents)}")
    return "reboot order: " + "; ".join(steps)


def render(nodes: Sequence[NodeStatus], now: datetime) -> str:
    header = ("NODE", "ROLE", "STATUS", "LAST PING", "AGE", "CONFIG", "BOOT", "FLATCAR", "K3S", "HEALTH", "REBOOT")
    rows: list[tuple[str, ...]] = [header]
    for node in nodes:
        rows.append(
            (
                node.hostname,
                node.role,
                node.check or "no check",
                node.last_ping.strftime("%Y-%m-%d %H:%M:%S") if node.last_ping else "never",
                age(node.last_ping, now),
                *(_cell(node, name) for name in FIELDS),
                (node.heartbeat.health if node.heartbeat is not None else None) or "?",
                "reboot needed" if node.reboot_needed else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join([*lines, reboot_order(nodes)])


def render_unknowable(made: Mapping[str, Mapping[str, Any]]) -> str:
    """With heartbeat.provider urls: what pulumi up made, and what cannot be known here."""
    lines = [
        "heartbeat.provider is urls: the pings go to your own service, which ephemeros cannot read, so each node's "
        "last ping, status and what it booted are unknown here. What pulumi up last made:"
    ]
    for hostname, summary in made.items():
        fields = ", ".join(f"{k} {v}" for k, v in expected(summary).items()) or "nothing known"
        lines.append(f"  {hostname} ({summary.get('role', '?')}): {fields}")
    return "\n".join(lines)
