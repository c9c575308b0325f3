"""Heartbeat checks and DNS records under the real engine: a stack using the local Healthchecks server and a
real BIND 9, through up, a no-change preview, updates, refresh after changes made by hand, and destroy.

The tests run in order against one stack.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from base import node_layout as L
from harness.bind import Bind, bind_server
from harness.fakes.healthchecks import FakeHealthchecks, Project, running
from harness.pulumi_project import PulumiProject
from harness.stack import stack_settings
from harness.stick import secret_file

pytestmark = [pytest.mark.engine, pytest.mark.scenario]
ZONE = "ephemeros.test"
DOMAIN = "dev.ephemeros.test"


@dataclass
class World:
    project: PulumiProject
    fake: FakeHealthchecks
    account: Project
    bind: Bind


def settings(fake: FakeHealthchecks, bind: Bind) -> dict[str, Any]:
    doc = stack_settings("dev")
    doc["nodes"][0]["address"] = "192.168.60.10/24"
    doc["nodes"][1]["address"] = "192.168.60.11/24"  # node2 stays on DHCP: it keeps its own record
    doc["heartbeat"] = {"provider": "healthchecks", "apiUrl": fake.url, "clusterCheck": True, "tags": ["lab"]}
    doc["dns"] = {"rfc2136": {"server": bind.address, "port": bind.port, "zone": ZONE, "keyName": bind.key_name}}
    return doc


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running(FakeHealthchecks()) as fake, bind_server(ZONE) as bind:
        account = fake.add_project()
        project = PulumiProject(tmp_path_factory.mktemp("engine") / "ephemeros", "services")
        project.init(settings(fake, bind))
        project.set_secret("healthchecksApiKey", account.api_key)
        project.set_secret("dnsTsigSecret", bind.secret)
        yield World(project, fake, account, bind)
        project.run("destroy", "--yes", check=False)


def ops(project: PulumiProject) -> list[tuple[str, str]]:
    return sorted((s["op"], s["urn"].split("::")[-1]) for s in project.preview_steps())


def check_names(fake: FakeHealthchecks) -> list[str]:
    return sorted(c["name"] for c in fake.checks())


def test_up_makes_a_check_per_node_and_records_for_static_nodes(world: World) -> None:
    project, fake, bind = world.project, world.fake, world.bind
    project.run("up", "--yes")
    assert check_names(fake) == [
        f"k3s cluster dev ({DOMAIN})",
        f"node0.{DOMAIN}",
        f"node1.{DOMAIN}",
        f"node2.{DOMAIN}",
    ]
    node1 = fake.check_named(f"node1.{DOMAIN}")
    assert node1 is not None
    assert (node1["timeout"], node1["grace"]) == (300, 60)
    assert node1["tags"] == "ephemeros dev agent lab"
    assert bind.dig(f"node0.{DOMAIN}") == ["192.168.60.10"]
    assert bind.dig(f"node1.{DOMAIN}") == ["192.168.60.11"]
    assert bind.dig(f"node2.{DOMAIN}") == []  # on DHCP: the node updates it itself


def test_the_stick_carries_the_nodes_ping_url(world: World) -> None:
    nodes = world.project.stack_output("nodes")
    for hostname in ("node0", "node1", "node2"):
        check = world.fake.check_named(f"{hostname}.{DOMAIN}")
        assert check is not None
        env = secret_file(Path(nodes[hostname]["stickImage"]), L.HEARTBEAT_ENV)
        assert env is not None
        assert f'HEARTBEAT_URL="{world.fake.url}/ping/{check["uuid"]}"' in env
        assert ("CLUSTER_HEARTBEAT_URL=" in env) == (hostname == "node0")  # servers keep the cluster's check up


def test_nodes_that_keep_their_own_records_get_the_updater_and_the_key(world: World) -> None:
    project, bind = world.project, world.bind
    nodes = project.stack_output("nodes")
    updater = project.build_dir / "ignition" / L.DNS_UPDATER_URL_PATH
    assert updater.read_bytes() == (project.dir / ".tools/nodetools/ephemeros-dnsupdate").read_bytes()
    for hostname, keeps in (("node0", True), ("node1", False), ("node2", True)):  # node0: the primary record
        ignition = unquote((project.build_dir / "ignition" / f"{hostname}.ign").read_text())
        assert (f"/{L.DNS_UPDATER_URL_PATH}" in ignition) == keeps
        ddns = secret_file(Path(nodes[hostname]["stickImage"]), L.DDNS_ENV)
        assert (ddns == f'DNS_TSIG_SECRET="{bind.secret}"\n') == keeps
    ignition = unquote((project.build_dir / "ignition/node2.ign").read_text())
    assert f'rfc2136 "node2.{DOMAIN}"' in ignition
    assert f'rfc2136 "primary.{DOMAIN}"' not in ignition  # agents never claim the primary record


def test_a_second_preview_has_no_changes(world: World) -> None:
    world.project.run("preview", "--expect-no-changes")


def test_period_grace_and_ttl_change_in_place(world: World) -> None:
    project, fake = world.project, world.fake
    uuids = {c["name"]: c["uuid"] for c in fake.checks()}
    project.run("config", "set", "--path", "heartbeat.period", "600")
    project.run("config", "set", "--path", "heartbeat.grace", "120")
    project.run("config", "set", "--path", "dns.rfc2136.ttl", "120")
    steps = ops(project)
    assert [s for s in steps if "heartbeat" in s[1]] == [
        ("update", "dev-heartbeat"),
        *[("update", f"dev-node{i}-heartbeat") for i in range(3)],
    ]
    assert [s for s in steps if s[1].startswith("dev-dns-")] == [
        ("update", f"dev-dns-node0.{DOMAIN}-A"),
        ("update", f"dev-dns-node1.{DOMAIN}-A"),
    ]
    project.run("up", "--yes")
    assert {c["name"]: c["uuid"] for c in fake.checks()} == uuids  # the same checks, updated
    assert {(c["timeout"], c["grace"]) for c in fake.checks()} == {(600, 120)}
    ttl = re.search(r"(\d+)\s+IN\s+A", world.bind.dig_full(f"node0.{DOMAIN}"))
    assert ttl is not None
    assert ttl.group(1) == "120"
    project.run("preview", "--expect-no-changes")


def test_a_moved_node_updates_its_record(world: World) -> None:
    world.project.run("config", "set", "--path", "nodes[1].address", "192.168.60.21/24")
    assert [s for s in ops(world.project) if s[1].startswith("dev-dns-")] == [("update", f"dev-dns-node1.{DOMAIN}-A")]
    world.project.run("up", "--yes")
    assert world.bind.dig(f"node1.{DOMAIN}") == ["192.168.60.21"]


def test_refresh_notices_a_check_and_a_record_changed_by_hand(world: World) -> None:
    project, fake, bind = world.project, world.fake, world.bind
    node2 = fake.check_named(f"node2.{DOMAIN}")
    assert node2 is not None
    del world.account.checks[node2["uuid"]]
    bind.nsupdate(f"update delete node0.{DOMAIN}. A\nupdate add node0.{DOMAIN}. 60 A 10.6.6.6")
    project.run("refresh", "--yes")
    steps = ops(project)
    assert ("create", "dev-node2-heartbeat") in steps
    assert ("update", f"dev-dns-node0.{DOMAIN}-A") in steps
    assert ("update", "dev-node2-stick") in steps  # the new check has a new ping URL
    project.run("up", "--yes")
    assert bind.dig(f"node0.{DOMAIN}") == ["192.168.60.10"]
    assert f"node2.{DOMAIN}" in check_names(fake)
    project.run("preview", "--expect-no-changes")


def test_a_renamed_node_replaces_its_check_a_removed_node_loses_check_and_record(world: World) -> None:
    project, fake, bind = world.project, world.fake, world.bind
    project.run("config", "set", "--path", "nodes[2].hostname", "node5")
    project.run("up", "--yes")
    assert f"node5.{DOMAIN}" in check_names(fake)
    assert f"node2.{DOMAIN}" not in check_names(fake)

    doc = project.config_document()
    doc["nodes"] = [n for n in doc["nodes"] if n["hostname"] != "node1"]
    project.write_config_document(doc)
    steps = ops(project)
    assert ("delete", "dev-node1-heartbeat") in steps
    assert ("delete", f"dev-dns-node1.{DOMAIN}-A") in steps
    project.run("up", "--yes")
    assert check_names(fake) == [f"k3s cluster dev ({DOMAIN})", f"node0.{DOMAIN}", f"node5.{DOMAIN}"]
    assert bind.dig(f"node1.{DOMAIN}") == []


def test_another_spelling_of_the_api_url_keeps_every_check(world: World) -> None:
    project, fake = world.project, world.fake
    uuids = {c["name"]: c["uuid"] for c in fake.checks()}
    project.run("config", "set", "--path", "heartbeat.apiUrl", fake.url.replace("127.0.0.1", "localhost"))
    steps = ops(project)
    assert {op for op, name in steps if "heartbeat" in name} == {"update"}  # no replace, nothing deleted
    project.run("up", "--yes")
    assert {c["name"]: c["uuid"] for c in fake.checks()} == uuids
    project.run("preview", "--expect-no-changes")
    project.run("refresh", "--yes", "--expect-no-changes")


def test_a_renamed_cluster_keeps_its_nodes_checks_and_records(world: World) -> None:
    """New resource names, the same check and record names: the new resources adopt them, the old ones let go."""
    project, fake, bind = world.project, world.fake, world.bind
    uuids = {c["name"]: c["uuid"] for c in fake.checks() if c["name"].startswith("node")}
    project.run("config", "set", "clusterName", "lab2")
    project.run("up", "--yes")
    assert {c["name"]: c["uuid"] for c in fake.checks() if c["name"].startswith("node")} == uuids
    assert check_names(fake) == [f"k3s cluster lab2 ({DOMAIN})", f"node0.{DOMAIN}", f"node5.{DOMAIN}"]
    assert bind.dig(f"node0.{DOMAIN}") == ["192.168.60.10"]
    project.run("preview", "--expect-no-changes")


def test_no_credential_or_ping_secret_is_in_plain_state_or_output(world: World) -> None:
    state = world.project.state_file.read_text()
    secrets = [world.account.api_key, world.bind.secret, *(c["uuid"] for c in world.fake.checks())]
    for secret in secrets:
        assert secret not in state
        for output in world.project.outputs:
            assert secret not in output


def test_destroy_removes_checks_and_records(world: World) -> None:
    world.project.run("destroy", "--yes")
    assert world.fake.checks() == []
    assert world.bind.dig(f"node0.{DOMAIN}") == []
