"""Coordinated reboots: each node asks for a reboot when what is served for it changed, or when it has been up too
long, and kured (the Kubernetes reboot daemon) reboots the nodes one at a time, each drained first."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from settings.model_base import Model
from settings.types import ImageReference

Weekday = Literal["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
WEEK: tuple[Weekday, ...] = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_TIME_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
# k3s issues a node's certificates for 365 days when it starts, and a diskless node starts anew at every boot: a node
# must reboot well before a year is up, the reboot window and the other nodes' turns included.
MAX_UPTIME_LIMIT = 300


def _time_of_day(value: str) -> str:
    if not _TIME_OF_DAY.match(value):
        raise ValueError(f"{value!r} is not a time of day: write HH:MM on a 24-hour clock, e.g. 02:30")
    return value


def _time_zone(value: str) -> str:
    if not _TIME_ZONE.match(value):
        raise ValueError(f"{value!r} is not a time zone name: write UTC or a name such as Europe/Berlin")
    return value


def _uptime_days(value: int) -> int:
    if value > MAX_UPTIME_LIMIT:
        raise ValueError(
            f"{value} days is too long: k3s issues a node's certificates for 365 days when it starts, and a node "
            f"that waits for the reboot window and its turn must not outlive them; give at most {MAX_UPTIME_LIMIT}"
        )
    return value


TimeOfDay = Annotated[str, AfterValidator(_time_of_day)]
TimeZone = Annotated[str, AfterValidator(_time_zone)]


class RebootWindow(Model):
    """When kured may reboot nodes: on these days, between these times of day (kured's window cannot span
    midnight)."""

    days: tuple[Weekday, ...] = Field(default=WEEK, min_length=1, description="days reboots may happen on")
    start: TimeOfDay = Field(default="00:00", description="reboots start after this time of day, HH:MM")
    end: TimeOfDay = Field(default="23:59", description="and end before this one, later the same day")
    time_zone: TimeZone = Field(default="UTC", description="the time zone of start and end, e.g. Europe/Berlin")

    @model_validator(mode="after")
    def _ordered(self) -> RebootWindow:
        if self.start >= self.end:
            raise ValueError(
                f"start {self.start} is not before end {self.end}: kured's window lies within one day, so a night "
                "window is two days' early hours, e.g. start 01:00 and end 05:00"
            )
        return self


class Kured(Model):
    """kured, which k3s deploys from the servers' manifests: it reboots one node at a time, each drained first."""

    image: ImageReference = Field(
        default="ghcr.io/kubereboot/kured:1.20.0",
        description="kured's image; pin it by digest (<image>@sha256:...) or point it at a LAN mirror",
    )
    period: int = Field(default=900, ge=60, le=86400, description="seconds between kured's looks at a node")
    drain_timeout: int = Field(
        default=1800,
        ge=0,
        description="seconds a drain may take; then kured uncordons the node, lets another take its turn, and "
        "tries again later (0: wait for ever, holding every other node's reboot)",
    )
    lock_release_delay: int = Field(
        default=300,
        ge=0,
        description="seconds a rebooted node keeps the reboot lock once it is back, so that it settles (its pods "
        "back, a server's datastore member caught up) before the next node goes",
    )


class Updates(Model):
    """Coordinated reboots: a timer on each node compares what it booted with what is served for it now (its
    Ignition config and its boot script) and, when they differ or it has been up too long, asks kured for a reboot.
    kured reboots one node at a time, in the reboot window, each drained first."""

    enabled: bool = Field(default=True, description="false turns coordinated reboots off")
    check_period: int = Field(
        default=900, ge=60, le=86400, description="seconds between a node's looks at what is served for it"
    )
    max_uptime_days: Annotated[int, AfterValidator(_uptime_days)] = Field(
        default=180,
        ge=0,
        description=f"a node asks for a reboot after this many days up, changed or not (0: never): k3s's "
        f"certificates last 365 days from its start, and Flatcar's fixes arrive by rebooting (at most "
        f"{MAX_UPTIME_LIMIT})",
    )
    window: RebootWindow = Field(default=RebootWindow(), description="when kured may reboot nodes")
    kured: Kured = Field(default=Kured(), description="the kured that reboots the nodes")


def updates_warnings(updates: Updates | None, datastore_type: str) -> list[str]:
    if updates is not None and datastore_type == "sqlite":
        return [
            "updates: coordinated reboots reboot the only server when its config changes or its time is up, and with "
            "datastore.type sqlite the cluster's state is lost each time; use an external datastore"
        ]
    return []
