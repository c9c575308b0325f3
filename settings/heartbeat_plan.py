"""The heartbeat checks ephemeros keeps at healthchecks: one per node, and optionally one for the cluster. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from settings.model import Heartbeat, Node, Settings, fqdn

MAX_CHECK_NAME = 100  # the healthchecks API refuses a longer name: "name is too long"
RESTORE_CHECK_PERIOD = 604800  # the restore check runs weekly
RESTORE_CHECK_GRACE = 86400  # and may start an hour late, or after the VM was down for a while (Persistent=)


@dataclass(frozen=True)
class CheckSpec:
    name: str
    slug: str
    tags: tuple[str, ...]
    desc: str
    timeout: int  # seconds between pings
    grace: int
    channels: str


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9-_]", "-", name.lower())


def uses_healthchecks(settings: Settings) -> bool:
    """Whether ephemeros makes the checks through the healthchecks API (rather than being given ping URLs)."""
    return settings.heartbeat is not None and settings.heartbeat.provider == "healthchecks"


def _heartbeat(settings: Settings) -> Heartbeat:
    if settings.heartbeat is None:
        raise ValueError("heartbeat checks need heartbeat settings")
    return settings.heartbeat


def _tags(settings: Settings, *own: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(["ephemeros", settings.cluster_name, *own, *_heartbeat(settings).tags]))


def node_check_name(hostname: str, domain: str) -> str:
    """A node's check is named by the node's FQDN (`domain` as the settings read it)."""
    return fqdn(hostname, domain)


def node_check(settings: Settings, node: Node) -> CheckSpec:
    heartbeat = _heartbeat(settings)
    name = node_check_name(node.hostname, settings.domain)
    return CheckSpec(
        name=name,
        slug=_slug(name),
        tags=_tags(settings, node.role),
        desc=f"ephemeros: k3s {node.role} {node.hostname} of cluster {settings.cluster_name}; "
        "its heartbeat pings /fail when k3s is unhealthy",
        timeout=heartbeat.period,
        grace=heartbeat.grace,
        channels=heartbeat.channels,
    )


def cluster_check(settings: Settings) -> CheckSpec | None:
    """A check that any healthy server keeps up: it alerts when no server's API is ready."""
    heartbeat = settings.heartbeat
    if heartbeat is None or not heartbeat.cluster_check:
        return None
    name = f"k3s cluster {settings.cluster_name} ({settings.domain})"
    return CheckSpec(
        name=name,
        slug=_slug(name),
        tags=_tags(settings, "cluster"),
        desc=f"ephemeros: cluster {settings.cluster_name}; every server with a ready API server pings it",
        timeout=heartbeat.period,
        grace=heartbeat.grace,
        channels=heartbeat.channels,
    )


def _datastore_check(settings: Settings, what: str, desc: str, timeout: int, grace: int) -> CheckSpec:
    heartbeat = _heartbeat(settings)
    name = f"k3s datastore {settings.cluster_name} {what} ({settings.domain})"
    return CheckSpec(
        name=name,
        slug=_slug(name),
        tags=_tags(settings, "datastore"),
        desc=desc,
        timeout=timeout,
        grace=max(heartbeat.grace, grace),
        channels=heartbeat.channels,
    )


def dumps_check(settings: Settings) -> CheckSpec | None:
    """A check that the datastore's dump job pings at every run: it alerts when dumps stop or fail."""
    dumps = settings.datastore.dumps
    period = dumps.keep.period() if dumps is not None else None
    if not uses_healthchecks(settings) or period is None:
        return None
    desc = (
        f"ephemeros: dumps of cluster {settings.cluster_name}'s datastore to its bucket; each run pings /start, then "
        "success or its exit status"
    )
    return _datastore_check(settings, "dumps", desc, period, 3600)


def restore_check(settings: Settings) -> CheckSpec | None:
    """A check that the datastore's weekly restore check pings: it alerts when the newest dump does not restore,
    or when the check stops running."""
    if not uses_healthchecks(settings) or settings.datastore.dumps is None:
        return None
    desc = (
        f"ephemeros: every week, cluster {settings.cluster_name}'s datastore restores its newest dump into a scratch "
        "database and checks it; each run pings /start, then success or its exit status"
    )
    return _datastore_check(settings, "restore check", desc, RESTORE_CHECK_PERIOD, RESTORE_CHECK_GRACE)
