"""Read-only checks of the services the stack uses, run before any resource is declared, so that `pulumi preview`
already refuses a key the service refuses, or a zone its server does not serve. A service that cannot be reached
is a warning: `pulumi up` needs it, but a preview need not. One function per service, each returning the problems
(each naming its key) and warnings it found; `check_services` runs them all, and the problems join the other
pre-flight problems in one block. No message holds a secret.

Each service's client is imported only when the stack uses the service: their libraries (HTTP, DNS) take a good
part of a second to load, at every run of the program.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from settings import NAMESPACE
from settings.credentials import Credentials
from settings.heartbeat_plan import uses_healthchecks
from settings.model import Settings
from stack.outputs import recorded_datastore_vm
from stack.service_check import ServiceCheck
from stack.vultr_preflight import check_vultr

if TYPE_CHECKING:
    from providers.healthchecks_api import Json

RETRIES = 1  # a preview waits for no backoff: a service that does not answer at once is a warning


@dataclass(frozen=True)
class HealthchecksCheck(ServiceCheck):
    ping_urls: dict[str, str] = field(default_factory=dict)  # check name -> its ping URL, for names used once


@dataclass(frozen=True)
class Services:
    """What the checks found: every problem and warning, and the heartbeat checks' ping URLs as the API has them."""

    problems: tuple[str, ...]
    warnings: tuple[str, ...]
    ping_urls: dict[str, str]


def _channel_problems(wanted: str, channels: list[Json]) -> list[str]:
    """heartbeat.channels names ("*", "" or names and ids) against the project's channels."""
    if wanted in ("*", ""):
        return []
    problems = []
    listed = ", ".join(f"{c['name'] or c['id']} ({c['kind']})" for c in channels) or "none"
    for item in wanted.split(","):
        matches = [c for c in channels if item in (c["id"], c["name"])]
        if not matches:
            problems.append(
                f"{NAMESPACE}:heartbeat.channels: {item!r} is not a channel of the healthchecks project: its "
                f"channels are {listed}; name them exactly, separated by commas, or use '*' for all"
            )
        elif len(matches) > 1:
            problems.append(
                f"{NAMESPACE}:heartbeat.channels: {item!r} names {len(matches)} channels of the project: use their "
                f"ids ({', '.join(c['id'] for c in matches)}), or rename them"
            )
    return problems


def check_healthchecks(settings: Settings, credentials: Credentials, previewing: bool = True) -> HealthchecksCheck:
    """The API key (the channels list answers only the read-write key) and heartbeat.channels, while `previewing`;
    and always the ping URLs of the checks that exist already."""
    key = credentials.healthchecks_api_key
    if settings.heartbeat is None or not uses_healthchecks(settings) or key is None:
        return HealthchecksCheck()
    from providers.healthchecks_api import ApiKey, HealthchecksApi, HealthchecksError, KeyRefused

    api_url = settings.heartbeat.api_url
    api = HealthchecksApi(api_url, ApiKey.configured(key), retries=RETRIES, backoff=0)
    try:
        channels = api.channels() if previewing else []
        checks = api.checks()
    except KeyRefused:
        return HealthchecksCheck(
            problems=(
                f"{NAMESPACE}:healthchecksApiKey: {api_url} refused the key: set the project's read-write API key "
                "(Project Settings, API Access; a read-only key cannot make checks) with "
                "`pulumi config set --secret healthchecksApiKey`",
            )
        )
    except HealthchecksError as error:
        if error.status is not None and error.status < 500 and error.status != 429:
            return HealthchecksCheck(
                problems=(f"{NAMESPACE}:heartbeat.apiUrl: {error}: is {api_url} a healthchecks server's address?",)
            )
        return HealthchecksCheck(
            warnings=(f"the API key and heartbeat.channels are not checked, as healthchecks does not answer: {error}",)
        )
    names = [c.get("name") for c in checks]
    ping_urls = {c["name"]: c["ping_url"] for c in checks if "ping_url" in c and names.count(c.get("name")) == 1}
    problems = _channel_problems(settings.heartbeat.channels, channels) if previewing else []
    return HealthchecksCheck(problems=tuple(problems), ping_urls=ping_urls)


def check_dns(settings: Settings, credentials: Credentials) -> ServiceCheck:
    """The TSIG key and the zone, with one signed query for the zone's SOA at dns.rfc2136.server."""
    rfc2136 = settings.dns.rfc2136 if settings.dns is not None else None
    secret = credentials.dns_tsig_secret
    if rfc2136 is None or secret is None:
        return ServiceCheck()
    from providers.rfc2136 import PrimaryServer, Zone

    keys = {  # the setting to look at for each outcome
        Zone.UNKNOWN_KEY: "dns.rfc2136.keyName",
        Zone.BAD_SIGNATURE: "dnsTsigSecret",
        Zone.BAD_TIME: "dns.rfc2136.server",
        Zone.UNSIGNED: "dns.rfc2136.server",
        Zone.NOT_SERVED: "dns.rfc2136.zone",
    }
    server = PrimaryServer(rfc2136.server, rfc2136.port, rfc2136.zone, rfc2136.key_name, rfc2136.algorithm, secret)
    check = server.check_zone()
    if check.zone is Zone.SERVED:
        return ServiceCheck()
    if check.zone is Zone.UNREACHABLE:
        return ServiceCheck(warnings=(f"the DNS key and zone are not checked: {server.explain(check)}",))
    return ServiceCheck(problems=(f"{NAMESPACE}:{keys[check.zone]}: {server.explain(check)}",))


def check_services(settings: Settings, credentials: Credentials, previewing: bool) -> Services:
    """Every service check (one more service: one more function here). Those that only find problems run only while
    `previewing` (`pulumi up` previews first); healthchecks' runs always, for the ping URLs the sticks carry."""
    healthchecks = check_healthchecks(settings, credentials, previewing)
    checks: tuple[ServiceCheck, ...] = (healthchecks,)
    if previewing:
        checks += (check_dns(settings, credentials), check_vultr(settings, credentials, recorded_datastore_vm))
    return Services(
        problems=tuple(p for c in checks for p in c.problems),
        warnings=tuple(w for c in checks for w in c.warnings),
        ping_urls=healthchecks.ping_urls,
    )
