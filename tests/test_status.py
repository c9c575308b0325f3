"""`make status`: heartbeat bodies read field by field, what a node booted against what `pulumi up` made, the
reboot order, and the checks, pings and bodies read from the local Healthchecks server as from the real one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from harness.fakes.healthchecks import FakeHealthchecks, Project, running
from harness.stack import SECRET_VALUES, base_settings, secret_keys, to_raw
from providers.healthchecks_api import ApiKey, HealthchecksApi, KeyRefused
from settings import load_settings
from settings.heartbeat_plan import node_check
from status.report import NodeStatus, parse_body, reboot_order, render
from status.sources import node_statuses

DOMAIN = "lab.ephemeros.test"
CONFIG = "3f2a9c1e0b7d" + "0" * 52
BOOT = "9e8d7c6b5a4f" + "1" * 52
TODAY = f"node1: k3s agent healthy; config {CONFIG[:12]}; boot {BOOT[:12]}; flatcar 4593.2.5; k3s version v1.36.4+k3s1"
MADE = {
    "role": "agent",
    "configDigest": CONFIG,
    "bootDigest": BOOT,
    "flatcarVersion": "4593.2.5",
    "k3sVersion": "v1.36.4+k3s1",
}


def test_a_full_body_is_read_field_by_field() -> None:
    body = parse_body(TODAY)
    assert (body.hostname, body.health) == ("node1", "k3s agent healthy")
    assert body.booted == {"config": CONFIG[:12], "boot": BOOT[:12], "flatcar": "4593.2.5", "k3s": "v1.36.4+k3s1"}


def test_todays_shorter_body_and_a_failure_reason_are_read_too() -> None:
    body = parse_body("node0: API server not ready: not ready; config 3f2a9c1e0b7d; k3s version v1.36.4+k3s1")
    assert (body.hostname, body.health) == ("node0", "API server not ready: not ready")
    assert body.booted == {"config": "3f2a9c1e0b7d", "k3s": "v1.36.4+k3s1"}
    assert parse_body("garbage").booted == {}


def status(body: str | None, made: dict[str, str], role: str = "agent", check: str = "up") -> NodeStatus:
    from status.report import expected

    return NodeStatus(
        hostname="node1",
        role=role,
        check=check,
        last_ping=datetime(2026, 12, 3, 10, 0, tzinfo=UTC),
        heartbeat=parse_body(body) if body is not None else None,
        made=expected({"role": role, **made}),
    )


def test_a_node_that_booted_what_up_made_needs_no_reboot() -> None:
    assert not status(TODAY, MADE).reboot_needed


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"configDigest": "0" * 64}, "config"),
        ({"bootDigest": "0" * 64}, "boot"),
        ({"flatcarVersion": "4600.0.0"}, "flatcar"),
        ({"k3sVersion": "v1.37.0+k3s1"}, "k3s"),
    ],
)
def test_each_field_that_differs_needs_a_reboot(change: dict[str, str], field: str) -> None:
    node = status(TODAY, {**MADE, **change})
    assert node.reboot_needed
    assert node.verdict(field) == "old"


def test_a_field_either_side_lacks_is_unknown_not_old_and_current_accepts_any_flatcar() -> None:
    short = "node1: k3s agent healthy; config 3f2a9c1e0b7d; k3s version v1.36.4+k3s1"
    node = status(short, {"configDigest": CONFIG, "bootDigest": "0" * 64, "flatcarVersion": "4600.0.0"})
    assert (node.verdict("boot"), node.verdict("flatcar"), node.verdict("k3s")) == ("unknown", "unknown", "unknown")
    assert not node.reboot_needed
    assert not status(TODAY, {**MADE, "flatcarVersion": "current"}).reboot_needed


def named(node: NodeStatus, hostname: str) -> NodeStatus:
    from dataclasses import replace

    return replace(node, hostname=hostname)


def test_servers_reboot_one_at_a_time_then_agents() -> None:
    old = {**MADE, "configDigest": "0" * 64}
    nodes = [
        named(status(TODAY, old, role="server"), "node0"),
        named(status(TODAY, old), "node1"),
        named(status(TODAY, MADE), "node2"),
        named(status(TODAY, old, role="server"), "node3"),
        named(status(TODAY, old), "node4"),
    ]
    assert reboot_order(nodes) == (
        "reboot order: servers one at a time, each back up before the next: node0, then node3; then agents: "
        "node1, node4"
    )
    assert reboot_order([named(status(TODAY, MADE), "node2")]) == "no node needs a reboot for what pulumi up last made"


def test_the_table_shows_what_a_node_booted_against_what_up_made() -> None:
    now = datetime(2026, 12, 3, 10, 4, 10, tzinfo=UTC)
    table = render([status(TODAY, {**MADE, "configDigest": "a" * 64})], now)
    header, row, order = table.splitlines()
    assert header.split() == [
        "NODE",
        "ROLE",
        "STATUS",
        "LAST",
        "PING",
        "AGE",
        "CONFIG",
        "BOOT",
        "FLATCAR",
        "K3S",
        "HEALTH",
        "REBOOT",
    ]
    assert "4m 10s" in row
    assert f"{CONFIG[:12]} (now aaaaaaaaaaaa)" in row
    assert row.endswith("k3s agent healthy  reboot needed")
    assert order == "reboot order: agents: node1"


# --- against the local Healthchecks server ------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeHealthchecks]:
    with running(FakeHealthchecks()) as server:
        yield server


@pytest.fixture
def project(fake: FakeHealthchecks) -> Project:
    return fake.add_project()


def check(fake: FakeHealthchecks, project: Project, hostname: str) -> str:
    made = fake.create(project, {"name": f"{hostname}.{DOMAIN}", "timeout": 300, "grace": 60})[1]
    assert made is not None
    return f"{fake.url}/ping/{made['uuid']}"


def test_pings_and_bodies_are_served_as_the_api_docs_say(fake: FakeHealthchecks, project: Project) -> None:
    url = check(fake, project, "node1")
    requests.post(url, data=TODAY, timeout=5)
    requests.get(url + "/log", timeout=5)  # no body
    api = HealthchecksApi(fake.url, ApiKey.configured(project.api_key))
    uuid = url.rsplit("/", 1)[1]
    pings = api.pings("node1", uuid)
    assert [(p["n"], p["type"], p["body_url"] is not None) for p in pings] == [(2, "log", False), (1, "success", True)]
    assert {"date", "scheme", "remote_addr", "method", "ua", "rid"} <= pings[0].keys()
    assert api.ping_body("node1", uuid, 1) == TODAY
    assert api.ping_body("node1", uuid, 2) is None  # 404: no body
    with pytest.raises(KeyRefused):  # the pings need the read-write key
        HealthchecksApi(fake.url, ApiKey.configured(project.read_only_key)).pings("node1", uuid)


def test_the_status_is_computed_from_the_last_ping(fake: FakeHealthchecks, project: Project) -> None:
    url = check(fake, project, "node1")
    api = HealthchecksApi(fake.url, ApiKey.configured(project.api_key))
    assert api.checks()[0]["status"] == "new"
    requests.post(url, data=TODAY, timeout=5)
    assert api.checks()[0]["status"] == "up"
    fake.clock = timedelta(seconds=330)  # past the period, within the grace time
    assert api.checks()[0]["status"] == "grace"
    fake.clock = timedelta(seconds=400)
    assert api.checks()[0]["status"] == "down"


def test_node_statuses_read_each_nodes_newest_body(fake: FakeHealthchecks, project: Project) -> None:
    for hostname in ("node0", "node1"):
        url = check(fake, project, hostname)
        requests.post(url, data=TODAY.replace("node1", hostname), timeout=5)
        requests.post(url + "/log", data="", timeout=5)
    old = f"node1: k3s agent healthy; config {'0' * 12}; k3s version v1.36.4+k3s1"
    requests.post(f"{fake.url}/ping/{fake.check_named(f'node1.{DOMAIN}')['uuid']}", data=old, timeout=5)  # type: ignore[index]
    api = HealthchecksApi(fake.url, ApiKey.configured(project.api_key))
    nodes = {"node0": {**MADE, "role": "server"}, "node1": MADE, "node2": MADE}
    found = {s.hostname: s for s in node_statuses(nodes, DOMAIN, api)}
    assert not found["node0"].reboot_needed
    assert found["node1"].reboot_needed  # its newest body names an old config
    assert found["node1"].verdict("boot") == "unknown"  # that body does not say
    assert found["node2"].check is None  # no check: never made, or deleted
    assert found["node0"].last_ping is not None
    assert datetime.now(UTC) - found["node0"].last_ping < timedelta(minutes=1)


def test_the_checks_are_found_by_the_names_the_program_gives_them(fake: FakeHealthchecks, project: Project) -> None:
    """The stack's domain as the user wrote it (capitals, a final dot): the program's checks are named from the
    domain as the settings read it, and status finds them by the same rule."""
    doc = base_settings()
    doc["domain"] = "Lab.Ephemeros.TEST."
    doc["heartbeat"] = {"provider": "healthchecks"}
    doc["healthchecksApiKey"] = SECRET_VALUES["healthchecksApiKey"]
    settings = load_settings(to_raw(doc), secret_keys({"healthchecksApiKey"})).settings
    for node in settings.nodes:
        made = fake.create(project, {"name": node_check(settings, node).name, "timeout": 300, "grace": 60})[1]
        assert made is not None
        requests.post(f"{fake.url}/ping/{made['uuid']}", data=TODAY.replace("node1", node.hostname), timeout=5)
    api = HealthchecksApi(fake.url, ApiKey.configured(project.api_key))
    nodes = {node.hostname: {**MADE, "role": node.role} for node in settings.nodes}
    found = node_statuses(nodes, doc["domain"], api)
    assert [(s.hostname, s.check) for s in found] == [(node.hostname, "up") for node in settings.nodes]


def test_with_ping_urls_of_your_own_it_says_what_it_cannot_know() -> None:
    from status.report import render_unknowable

    text = render_unknowable({"node0": {"role": "server", "configDigest": CONFIG}, "node1": {"role": "agent"}})
    assert text.startswith("heartbeat.provider is urls: the pings go to your own service, which ephemeros cannot read")
    assert text.splitlines()[1:] == [f"  node0 (server): config {CONFIG[:12]}", "  node1 (agent): nothing known"]
