"""The services under the real engine, as a user changes their settings: sticks that change only when their bytes
would, keys and channels checked at preview, a rotated key used by refresh, and DNS records that are never lost
when the server or zone changes (three real BIND 9 servers with the same key: two accept updates, one's policy
refuses them).

The tests run in order against one stack.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import requests

from harness.bind import Bind, bind_server
from harness.fakes.healthchecks import FakeHealthchecks, Project, running
from harness.pulumi_project import PulumiProject
from harness.stack import REPO, stack_settings

pytestmark = [pytest.mark.engine, pytest.mark.scenario]
ZONE = "ephemeros.test"
DOMAIN = "dev.ephemeros.test"
STATIC = {f"node0.{DOMAIN}": ["192.168.60.10"], f"node1.{DOMAIN}": ["192.168.60.11"]}


@dataclass
class World:
    project: PulumiProject
    fake: FakeHealthchecks
    account: Project
    bind: Bind  # where the records are first
    refusing: Bind  # the same zone and key, with an update policy that allows nobody
    other: Bind  # the same zone and key, accepting updates


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with ExitStack() as servers:
        fake = servers.enter_context(running(FakeHealthchecks()))
        bind = servers.enter_context(bind_server(ZONE))
        refusing = servers.enter_context(bind_server(ZONE, secret=bind.secret, allow_update=False))
        other = servers.enter_context(bind_server(ZONE, secret=bind.secret))
        account = fake.add_project()
        project = PulumiProject(tmp_path_factory.mktemp("engine") / "ephemeros", "checks")
        doc: dict[str, Any] = stack_settings("dev")
        doc["nodes"][0]["address"] = "192.168.60.10/24"
        doc["nodes"][1]["address"] = "192.168.60.11/24"
        doc["heartbeat"] = {"provider": "healthchecks", "apiUrl": fake.url, "clusterCheck": True}
        doc["dns"] = {"rfc2136": {"server": bind.address, "port": bind.port, "zone": ZONE, "keyName": bind.key_name}}
        project.init(doc)
        project.set_secret("healthchecksApiKey", account.api_key)
        project.set_secret("dnsTsigSecret", bind.secret)
        yield World(project, fake, account, bind, refusing, other)
        project.run("destroy", "--yes", "--run-program", check=False)


def ops(project: PulumiProject) -> list[tuple[str, str]]:
    return sorted((s["op"], s["urn"].split("::")[-1]) for s in project.preview_steps())


def records(bind: Bind) -> dict[str, list[str]]:
    return {name: bind.dig(name) for name in STATIC}


def failed(project: PulumiProject, *args: str) -> str:
    done = project.run(*args, check=False)
    assert done.returncode != 0, done.stdout
    return done.stdout + done.stderr


def test_up_makes_checks_and_records(world: World) -> None:
    world.project.run("up", "--yes")
    assert len(world.fake.checks()) == 4
    assert records(world.bind) == STATIC


def test_a_changed_check_changes_no_stick(world: World) -> None:
    project = world.project
    project.run("config", "set", "--path", "heartbeat.period", "600")
    steps = ops(project)
    assert ("update", "dev-node0-heartbeat") in steps
    assert [s for s in steps if s[1].endswith("-stick")] == []  # the ping URLs stay what they are
    diff = project.run("preview", "--diff").stdout
    assert "[unknown]" not in diff
    project.run("up", "--yes")
    project.run("preview", "--expect-no-changes")


def test_channels_are_checked_at_preview(world: World) -> None:
    project = world.project
    project.run("config", "set", "--path", "heartbeat.channels", "Email, Pager")
    project.run("up", "--yes")
    assert {tuple(c["channel_ids"]) for c in world.fake.checks()} == {tuple(c["id"] for c in world.account.channels)}
    project.run("config", "set", "--path", "heartbeat.channels", "Email, oncall")
    output = failed(project, "preview")
    assert (
        "ephemeros:heartbeat.channels: 'oncall' is not a channel of the healthchecks project: its channels are "
        "Email (email), Pager (email)" in output
    )
    project.run("config", "set", "--path", "heartbeat.channels", "*")


def test_a_refused_key_fails_preview_and_a_rotated_one_is_used_by_refresh(world: World) -> None:
    project, account = world.project, world.account
    old = account.api_key
    account.api_key = "e" * 32  # rotated in the web UI
    output = failed(project, "preview")
    assert "ephemeros:healthchecksApiKey: " + world.fake.url + " refused the key" in output
    assert old not in output
    project.set_secret("healthchecksApiKey", account.api_key)
    # Without the program, refresh sees the configuration of the last up: the error says so, blaming no one key.
    output = failed(project, "refresh", "--yes")
    assert "the same as the one stored in the state (refresh and destroy use a newly set key only with " in output
    project.run("refresh", "--yes", "--run-program", "--expect-no-changes")
    project.run("up", "--yes")
    project.run("refresh", "--yes", "--expect-no-changes")  # the new key is in the state now


def test_make_refresh_and_destroy_run_the_program() -> None:
    for target in ("refresh", "destroy"):
        plan = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, check=True).stdout
        assert f"pulumi {target} --stack dev --non-interactive --run-program --yes" in plan


def status(project: PulumiProject) -> subprocess.CompletedProcess[str]:
    """`make status` as the Makefile runs it, on the test's copy of the project."""
    return subprocess.run(
        [str(REPO / ".venv/bin/python"), "-m", "status", "--stack", project.stack],
        cwd=project.dir,
        env={**project.env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_status_says_which_nodes_run_an_old_config(world: World) -> None:
    nodes = world.project.stack_output("nodes")
    for hostname, digest in (("node0", nodes["node0"]["configDigest"][:12]), ("node1", "0" * 12)):
        check = world.fake.check_named(f"{hostname}.{DOMAIN}")
        assert check is not None
        body = f"{hostname}: k3s healthy; config {digest}; k3s version v1.36.4+k3s1"
        requests.post(f"{world.fake.url}/ping/{check['uuid']}", data=body, timeout=5)
    done = status(world.project)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = {line.split()[0]: line for line in lines[1:4]}
    assert "reboot needed" in rows["node1"]
    assert "reboot needed" not in rows["node0"]
    assert rows["node2"].split()[1:3] == ["agent", "new"]  # never pinged
    assert lines[-1] == "reboot order: agents: node1"
    assert world.account.api_key not in done.stdout + done.stderr
    world.fake.clock = timedelta(seconds=600 + 60 + 1)  # past heartbeat.period (600) and grace (60)
    late = status(world.project)
    world.fake.clock = timedelta()
    assert late.returncode == 1
    assert "down or late: node0, node1" in late.stderr


def test_an_unreachable_dns_server_is_a_warning(world: World) -> None:
    project = world.project
    project.run("config", "set", "--path", "dns.rfc2136.port", "1")
    output = project.run("preview").stdout
    assert "the DNS key and zone are not checked: no answer from 127.0.0.1:1" in output
    project.run("config", "set", "--path", "dns.rfc2136.port", str(world.bind.port))


def test_a_zone_typo_is_refused_at_preview_and_deletes_nothing(world: World) -> None:
    project = world.project
    project.run("config", "set", "--path", "dns.rfc2136.zone", DOMAIN)  # a zone inside the one the server serves
    output = failed(project, "up", "--yes")
    assert (
        f"ephemeros:dns.rfc2136.zone: server 127.0.0.1:{world.bind.port} is not authoritative for zone {DOMAIN}"
        in output
    )
    assert records(world.bind) == STATIC
    project.run("config", "set", "--path", "dns.rfc2136.zone", ZONE)


def test_a_server_that_refuses_the_records_leaves_the_old_ones_serving(world: World) -> None:
    project = world.project
    project.run("config", "set", "--path", "dns.rfc2136.port", str(world.refusing.port))
    project.run("preview")  # the key works there and the zone is served: only the update policy will refuse
    output = failed(project, "up", "--yes")
    assert "the server does not let key ephemeros-test update this name" in output
    assert records(world.bind) == STATIC  # made first at the new server, and that failed: nothing deleted


def test_a_moved_server_gets_the_records_and_the_old_one_loses_them(world: World) -> None:
    project = world.project
    project.run("config", "set", "--path", "dns.rfc2136.port", str(world.other.port))
    project.run("up", "--yes")
    assert records(world.other) == STATIC
    assert records(world.bind) == {name: [] for name in STATIC}
    project.run("preview", "--expect-no-changes")
