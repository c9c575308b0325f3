"""Runs cut short, and answers that fail, under the real engine: nothing is lost and nothing is made twice.

A stack with a Vultr datastore (harness/fakes/vultr.py), heartbeat checks (harness/fakes/healthchecks.py) and the
datastore's DNS record on a real BIND 9 (through a relay, harness/dns_relay.py). For each kind of object, a
`pulumi up` is killed (SIGKILL, the CLI and every process under it) the moment the service has made one and is
answering: Pulumi never records it. After `pulumi cancel` (the killed run's lock), `pulumi up` again adopts what
the killed run made instead of making a second VM, address, rule, check or record, and `pulumi refresh` finds
nothing to change. Then 429 and 5xx bursts during an `up`: it completes, with each object made once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.rcode
import pytest

from harness.bind import Bind, bind_server
from harness.dns_relay import DnsRelay, dns_relay
from harness.fakes import healthchecks, vultr
from harness.fakes.healthchecks import FakeHealthchecks
from harness.fakes.serving import set_tripwire
from harness.fakes.vultr import Account, FakeVultr
from harness.processes import kill_tree
from harness.pulumi_project import PulumiProject
from harness.stack import SECRET_VALUES, stack_settings

pytestmark = [pytest.mark.engine]
ZONE = "ephemeros.test"
KILL_TIMEOUT = 300  # seconds for a `pulumi up` to reach its kill point


@dataclass
class World:
    workdir: Path
    vultr: FakeVultr
    account: Account
    healthchecks: FakeHealthchecks
    bind: Bind
    relay: DnsRelay


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with (
        vultr.running(FakeVultr()) as fake_vultr,
        healthchecks.running(FakeHealthchecks()) as fake_healthchecks,
        bind_server(ZONE) as bind,
        dns_relay(bind.address, bind.port) as relay,
    ):
        yield World(
            tmp_path_factory.mktemp("interrupted"),
            fake_vultr,
            fake_vultr.add_account(),
            fake_healthchecks,
            bind,
            relay,
        )


@dataclass(frozen=True)
class Stack:
    project: PulumiProject
    cluster: str

    @property
    def domain(self) -> str:
        return f"{self.cluster}.{ZONE}"

    @property
    def label(self) -> str:
        return f"ephemeros {self.cluster} datastore"


def new_stack(world: World, cluster: str) -> Stack:
    """A stack of its own (its own cluster name, domain and so its own objects), not up yet."""
    project = PulumiProject(world.workdir / cluster / "ephemeros", cluster)
    # A kill while the file backend wrote a metadata file would leave it empty; its URL writes none (the Makefile's).
    assert project.env["PULUMI_BACKEND_URL"].endswith("?metadata=skip")
    doc = stack_settings("dev")
    doc["clusterName"] = cluster
    doc["domain"] = f"{cluster}.{ZONE}"
    doc["heartbeat"] = {"provider": "healthchecks", "apiUrl": world.healthchecks.url}
    relay = world.relay
    doc["dns"] = {
        "rfc2136": {"server": relay.address, "port": relay.port, "zone": ZONE, "keyName": world.bind.key_name}
    }
    doc["datastore"] = {
        "type": "vultr",
        "vultr": {
            "region": "ams",
            "allowedSources": ["203.0.113.7/32"],
            "apiUrl": world.vultr.url,
            "waitForPostgres": False,
            "dnsName": f"db.{cluster}.{ZONE}",
        },
        "dumps": {"endpoint": "https://s3.eu-central-003.backblazeb2.com", "bucket": "lab-dumps", "prefix": "lab/"},
    }
    project.init(doc)
    project.set_secret("vultrApiKey", world.account.api_key)
    project.set_secret("healthchecksApiKey", world.healthchecks.add_project().api_key)  # its own check limit
    project.set_secret("dnsTsigSecret", world.bind.secret)
    project.set_secret("dumpsAccessKeyId", SECRET_VALUES["dumpsAccessKeyId"])
    project.set_secret("dumpsSecretAccessKey", SECRET_VALUES["dumpsSecretAccessKey"])
    return Stack(project, cluster)


def objects(world: World, stack: Stack) -> dict[str, int]:
    """How many of each kind of object the stack has at the services, found by their names."""
    account = world.account
    groups = [g for g in account.firewall_groups.values() if g.fields["description"].startswith(stack.label)]
    return {
        "reserved IPs": sum(r["label"].startswith(stack.label) for r in account.reserved_ips.values()),
        "firewall groups": len(groups),
        "firewall rules": sum(len(group.rules) for group in groups),
        "instances": sum(i.fields["label"] == stack.label for i in account.instances.values()),
        "heartbeat checks": sum(stack.domain in check["name"] for check in world.healthchecks.checks()),
        "DNS records": len(world.bind.dig(f"db.{stack.domain}")),
    }


# One of each: 3 node checks, the dumps' and the restore check's.
MADE_ONCE = {
    "reserved IPs": 1,
    "firewall groups": 1,
    "firewall rules": 1,
    "instances": 1,
    "heartbeat checks": 5,
    "DNS records": 1,
}
Trigger = Callable[[str, str, int], bool]


def made(method: str, pattern: str) -> Trigger:
    """An answer of the fake to a request that made an object."""
    return lambda m, path, status: m == method and re.fullmatch(pattern, path) is not None and status < 300


# Where each kind of object is made: at which service, and by which request (DNS: an accepted UPDATE).
KILL_POINTS: dict[str, tuple[str, Trigger | None]] = {
    "reserved IPs": ("vultr", made("POST", "/v2/reserved-ips")),
    "firewall groups": ("vultr", made("POST", "/v2/firewalls")),
    "firewall rules": ("vultr", made("POST", "/v2/firewalls/[^/]+/rules")),
    "instances": ("vultr", made("POST", "/v2/instances")),
    "heartbeat checks": ("healthchecks", made("POST", "/api/v3/checks/")),
    "DNS records": ("dns", None),
}


def up_killed_when(world: World, stack: Stack, kind: str) -> None:
    """`pulumi up`, killed with everything it started right after the first object of `kind` was made."""
    service, trigger = KILL_POINTS[kind]
    log = stack.project.dir / "killed-up.log"
    process = stack.project.start("up", "--yes", log=log)
    fired: list[bool] = []

    def fire() -> None:
        if not fired:
            fired.append(True)
            kill_tree(process.pid)

    def answered(method: str, path: str, status: int) -> None:
        if trigger is not None and trigger(method, path, status):
            fire()

    if service == "dns":
        world.relay.tripwire = lambda rcode: fire() if rcode == dns.rcode.NOERROR else None
    else:
        set_tripwire(world.vultr if service == "vultr" else world.healthchecks, answered)
    try:
        process.wait(timeout=KILL_TIMEOUT)
    finally:
        set_tripwire(world.vultr, None)
        set_tripwire(world.healthchecks, None)
        world.relay.tripwire = None
    assert fired, f"pulumi up ended ({process.returncode}) before it made one of the {kind}:\n{log.read_text()}"
    assert process.returncode == -9, log.read_text()


def state_ids(project: PulumiProject, type_suffix: str) -> list[str]:
    return [r["id"] for r in project.resources() if r["type"].endswith(type_suffix)]


@pytest.mark.parametrize("kind", list(KILL_POINTS))
def test_a_run_killed_after_a_create_leaves_no_orphan(world: World, kind: str) -> None:
    stack = new_stack(world, f"k{list(KILL_POINTS).index(kind)}")
    project = stack.project
    up_killed_when(world, stack, kind)
    # Made by the killed run, which never recorded it; the engine makes several at once (a check per node), so a
    # second may be made while the kill lands: each must be adopted, not made again.
    assert objects(world, stack)[kind] >= 1
    project.run("cancel", "--yes")  # the killed run's lock on the stack (a DIY backend's lock file)
    again = project.run("up", "--yes")
    assert "interrupted while creating" in again.stdout  # Pulumi noticed the cut, and the object was adopted:
    assert objects(world, stack) == MADE_ONCE
    project.run("refresh", "--yes", "--expect-no-changes")
    project.run("preview", "--expect-no-changes")
    if kind == "instances":
        assert state_ids(project, ":VultrInstance") == [
            i["id"] for i in world.vultr.instances() if i["label"] == stack.label
        ]


def test_429_and_5xx_bursts_during_up_are_retried_and_nothing_is_made_twice(world: World) -> None:
    stack = new_stack(world, "faults")
    fake, checks = world.vultr, world.healthchecks
    fake.fail_next(429, times=3, retry_after=1)
    # The API acted, and its gateway answered 5xx: the client must find what it made rather than make it again.
    fake.fail_next(503, method="POST", path="/v2/reserved-ips", processed=True)
    fake.fail_next(502, method="POST", path="/v2/instances", processed=True)
    # Refused before acting: the client must make it after all.
    fake.fail_next(500, times=2, method="POST", path="/v2/firewalls")
    fake.fail_next(504, times=2, method="GET", path="/v2/os")
    fake.fail_next(503, times=2, method="GET", path="/v2/firewalls")
    checks.fail_next(503, times=2)
    checks.fail_next(429, retry_after=1)
    injected = len(fake.faults) + len(checks.faults)
    started = time.monotonic()
    stack.project.run("up", "--yes")
    assert (len(fake.faults), len(checks.faults)) == (0, 0), "every injected fault was met"
    assert objects(world, stack) == MADE_ONCE
    stack.project.run("preview", "--expect-no-changes")
    print(f"{injected} faults injected; up took {time.monotonic() - started:.0f} s")
