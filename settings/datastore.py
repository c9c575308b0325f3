"""Where the k3s servers keep the cluster's state, and the PostgreSQL VM at Vultr that `pulumi up` can make for it."""

from __future__ import annotations

import re
from ipaddress import IPv4Network
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from settings.model_base import Model, empty_is_none
from settings.types import DnsName, HostName, HttpUrl, http_url

_REGION = re.compile(r"^[a-z]{3,4}$")
_PLAN = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^([A-Za-z0-9._-]+/)*$")
_TAG = re.compile(r"^[A-Za-z0-9._:-]{1,255}$")
VULTR_API_ROOT = "/v2"  # the version root of the Vultr API, below its origin


def vultr_api_origin(url: str) -> str:
    """The Vultr API's origin, however it is written: with or without the version root and a trailing slash."""
    origin = url.rstrip("/")
    return origin.removesuffix(VULTR_API_ROOT).rstrip("/") if origin.endswith(VULTR_API_ROOT) else origin


def _region(value: str) -> str:
    if not _REGION.match(value):
        raise ValueError(f"{value!r} is not a Vultr region id: write its short id, e.g. ams, fra, ewr")
    return value


def _plan(value: str) -> str:
    if not _PLAN.match(value):
        raise ValueError(f"{value!r} is not a Vultr plan id: write one such as vc2-1c-1gb")
    return value


def _bucket(value: str) -> str:
    if not _BUCKET.match(value) or ".." in value:
        raise ValueError(f"{value!r} is not a bucket name: 3-63 lowercase letters, digits, dots and hyphens")
    return value


def _prefix(value: str) -> str:
    if not _PREFIX.match(value):
        raise ValueError(f"{value!r} is not a key prefix: write folders ending with '/', e.g. k3s/ (or nothing)")
    return value


def _tag(value: str) -> str:
    if not _TAG.match(value):
        raise ValueError(f"{value!r} is not a Vultr tag: letters, digits and . _ : - only")
    return value


def _not_everywhere(what: str, why: str) -> AfterValidator:
    def check(networks: tuple[IPv4Network, ...]) -> tuple[IPv4Network, ...]:
        for network in networks:
            if network.prefixlen == 0:
                raise ValueError(f"{network} would open {what} to the whole internet, {why}")
        return networks

    return AfterValidator(check)


Region = Annotated[str, AfterValidator(_region)]
Plan = Annotated[str, AfterValidator(_plan)]
Bucket = Annotated[str, AfterValidator(_bucket)]
KeyPrefix = Annotated[str, AfterValidator(_prefix)]
VultrTag = Annotated[str, AfterValidator(_tag)]
VultrApiUrl = Annotated[str, AfterValidator(http_url), AfterValidator(vultr_api_origin)]


class Backups(Model):
    """Vultr's automatic backups of the whole VM (kept by Vultr, restored from its portal)."""

    enabled: bool = Field(default=True, description="false turns Vultr's automatic backups off")
    schedule: Literal["daily", "weekly", "monthly", "daily_alt_even", "daily_alt_odd"] = Field(
        default="daily", description="how often Vultr backs the VM up"
    )
    hour: int = Field(default=3, ge=0, le=23, description="the hour (UTC) backups are taken at")
    day_of_week: int = Field(default=1, ge=1, le=7, description="for weekly: 1 is Sunday, 7 Saturday")
    day_of_month: int = Field(default=1, ge=1, le=28, description="for monthly: the day of the month")


DUMP_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 604800}  # seconds between dumps of each schedule


class DumpKeep(Model):
    """How many dumps of each schedule are kept; 0 turns that schedule off."""

    hourly: int = Field(default=24, ge=0, le=1000, description="dumps every hour, this many kept")
    daily: int = Field(default=7, ge=0, le=1000, description="dumps every day, this many kept")
    weekly: int = Field(default=4, ge=0, le=1000, description="dumps every week, this many kept")

    @model_validator(mode="after")
    def _some_schedule(self) -> DumpKeep:
        if not self.schedules():
            raise ValueError(
                "every schedule keeps 0 dumps, so no dump would ever be taken: keep at least one (hourly, daily or "
                "weekly), or remove datastore.dumps to have none"
            )
        return self

    def schedules(self) -> dict[str, int]:
        """Each schedule that keeps a dump, with how many it keeps."""
        counts = {"hourly": self.hourly, "daily": self.daily, "weekly": self.weekly}
        return {name: count for name, count in counts.items() if count > 0}

    def period(self) -> int | None:
        """Seconds between dumps of the most frequent schedule, if any runs."""
        return min((DUMP_PERIODS[name] for name in self.schedules()), default=None)


class Dumps(Model):
    """pg_dump of the k3s database to an S3-compatible bucket on timers on the datastore VM (with rclone), each run
    reported to a heartbeat check when heartbeat.provider is healthchecks."""

    endpoint: HttpUrl = Field(
        description="the S3 endpoint, e.g. Backblaze B2's https://s3.eu-central-003.backblazeb2.com"
    )
    region: str = Field(default="", description="the bucket's region when the endpoint needs one (B2: eu-central-003)")
    bucket: Bucket = Field(description="the bucket the dumps go to")
    prefix: KeyPrefix = Field(default="", description="a folder in the bucket for this cluster's dumps, e.g. lab/")
    keep: DumpKeep = Field(default=DumpKeep(), description="how many dumps of each schedule are kept")


class Vultr(Model):
    """A Debian VM at Vultr with PostgreSQL, made and kept by `pulumi up`: the cluster's state outlives every node.

    Its address is a reserved IPv4, so that a new VM keeps the address every server's stick carries. PostgreSQL
    takes only TLS connections of the k3s role with its password; which addresses may connect at all is the
    firewall's job (allowedSources).
    """

    region: Region = Field(description="Vultr region id, e.g. ams")
    plan: Plan = Field(default="vc2-1c-1gb", description="Vultr plan id (1 CPU, 1 GB, 25 GB: vc2-1c-1gb)")
    os: str = Field(
        default="Debian 12 x64 (bookworm)", description="the operating system, by its name in Vultr's list (GET /v2/os)"
    )
    hostname: Annotated[HostName | None, BeforeValidator(empty_is_none)] = Field(
        default=None, description="the VM's host name; default <clusterName>-datastore"
    )
    label: str = Field(
        default="", description="the VM's label in the Vultr portal; default ephemeros <clusterName> datastore"
    )
    tags: tuple[VultrTag, ...] = Field(default=(), description="Vultr tags of the VM, besides ephemeros")
    dns_name: Annotated[DnsName | None, BeforeValidator(empty_is_none)] = Field(
        default=None,
        description="a DNS name for the datastore: in its certificate, and what servers connect to (else the "
        "address); with dns.rfc2136 serving it, pulumi up keeps its A record",
    )
    allowed_sources: Annotated[
        tuple[IPv4Network, ...],
        _not_everywhere(
            "PostgreSQL", "where anyone may try passwords: list the cluster's public egress addresses instead"
        ),
    ] = Field(
        min_length=1,
        description="the networks that may reach PostgreSQL (TCP 5432): the cluster's public egress addresses, "
        "e.g. 203.0.113.7/32, and this machine's if pulumi up is to check that PostgreSQL answers",
    )
    admin_sources: Annotated[
        tuple[IPv4Network, ...],
        _not_everywhere("SSH", "where anyone may try to log in: list your own addresses instead"),
    ] = Field(default=(), description="the networks that may reach SSH (TCP 22); default none: SSH closed")
    backups: Backups = Field(default=Backups(), description="Vultr's automatic backups of the VM")
    max_connections: int = Field(default=100, ge=10, le=10000, description="PostgreSQL's max_connections")
    api_url: VultrApiUrl = Field(
        default="https://api.vultr.com",
        description="the Vultr API's address (API v2 below it; written with or without /v2, it is the same API)",
    )
    apt_mirror: Annotated[HttpUrl | None, BeforeValidator(empty_is_none)] = Field(
        default=None, description="a Debian mirror for the VM's packages; default: the image's own"
    )
    wait_for_postgres: bool = Field(
        default=True,
        description="pulumi up waits until PostgreSQL answers over TLS from this machine (which must then be in "
        "allowedSources); false: it does not check (rotating the password still logs in from this machine)",
    )
    allow_replacement: bool = Field(
        default=False,
        description="true lets a change replace the VM, losing its database: take a dump first, see README",
    )


class Datastore(Model):
    """Where the k3s servers keep cluster state."""

    type: Literal["sqlite", "etcd", "postgres", "vultr"] = Field(
        default="sqlite",
        description="sqlite: one server, state lost at reboot; etcd: 3, 5, ... servers; postgres: an external "
        "PostgreSQL, from the secret datastoreEndpoint; vultr: a PostgreSQL VM at Vultr that pulumi up makes",
    )
    vultr: Vultr | None = Field(default=None, description="the PostgreSQL VM at Vultr, with type vultr")
    etcd_rejoin: str = Field(
        default=".tools/nodetools/ephemeros-etcd-rejoin",
        description="with type etcd: the program servers run before k3s to rejoin; served next to the Ignition configs",
    )
    dumps: Dumps | None = Field(default=None, description="dumps of the database to a bucket, with type vultr")

    @model_validator(mode="after")
    def _settings_of_the_type(self) -> Datastore:
        if self.type == "vultr" and self.vultr is None:
            raise ValueError(
                "type vultr needs datastore.vultr with at least region and allowedSources: pulumi config set --path "
                "datastore.vultr.region ams; pulumi config set --path 'datastore.vultr.allowedSources[0]' <CIDR>"
            )
        if self.type != "vultr" and (self.vultr is not None or self.dumps is not None):
            raise ValueError("vultr and dumps settings are only read with type vultr: remove them, or set the type")
        return self

    @property
    def external(self) -> bool:
        """The state lives outside the servers, which reach it with an endpoint (and CA) from their sticks."""
        return self.type in ("postgres", "vultr")
