"""Heartbeat checks: the HeartbeatCheck provider against the local Healthchecks server, and the node's script."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pulumi.dynamic import Config, ConfigureRequest, CreateResult, ReadResult, UpdateResult

from base import node_layout as L
from harness.fakes.healthchecks import Account, FakeHealthchecks, Project, running
from ignition.render import render_template
from providers import healthchecks, healthchecks_api
from providers.healthchecks import ApiKey, HealthchecksApi, HealthchecksError, HeartbeatCheckProvider


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHealthchecks]:
    monkeypatch.setattr(healthchecks_api, "BACKOFF", 0.01)  # the same retries, with shorter waits
    with running(FakeHealthchecks()) as server:
        yield server


@pytest.fixture
def project(fake: FakeHealthchecks) -> Project:
    return fake.add_project()


def outs(result: CreateResult | UpdateResult | ReadResult) -> dict[str, Any]:
    assert result.outs is not None
    return result.outs


def props(fake: FakeHealthchecks, project: Project, **changes: Any) -> dict[str, Any]:
    return {
        "apiUrl": fake.url,
        "apiKey": project.api_key,
        "name": "node1.lab.ephemeros.test",
        "slug": "node1-lab-ephemeros-test",
        "desc": "ephemeros: k3s agent node1",
        "tags": ["ephemeros", "lab", "agent"],
        "timeout": 300,
        "grace": 60,
        "channels": "*",
        **changes,
    }


def test_create_makes_one_check_with_the_nodes_settings(fake: FakeHealthchecks, project: Project) -> None:
    created = HeartbeatCheckProvider().create(props(fake, project))
    assert created.id == "node1.lab.ephemeros.test"  # not the UUID, which is the ping secret
    check = fake.check_named("node1.lab.ephemeros.test")
    assert check is not None
    assert (check["timeout"], check["grace"], check["tags"]) == (300, 60, "ephemeros lab agent")
    assert check["channel_ids"] == [c["id"] for c in project.channels]  # "*": every integration
    assert outs(created)["uuid"] == check["uuid"]
    assert outs(created)["pingUrl"] == f"{fake.url}/ping/{check['uuid']}"


def test_numbers_arrive_from_pulumi_as_floats_and_go_to_the_api_as_integers(
    fake: FakeHealthchecks, project: Project
) -> None:
    HeartbeatCheckProvider().create(props(fake, project, timeout=300.0, grace=60.0))
    check = fake.check_named("node1.lab.ephemeros.test")
    assert check is not None
    assert (check["timeout"], check["grace"]) == (300, 60)


def test_a_retried_create_does_not_duplicate(fake: FakeHealthchecks, project: Project) -> None:
    first = HeartbeatCheckProvider().create(props(fake, project))
    again = HeartbeatCheckProvider().create(props(fake, project, grace=120))
    assert len(fake.checks()) == 1
    assert outs(again)["uuid"] == outs(first)["uuid"]
    assert fake.checks()[0]["grace"] == 120


def test_period_and_grace_update_in_place_a_new_name_replaces(fake: FakeHealthchecks, project: Project) -> None:
    provider = HeartbeatCheckProvider()
    created = provider.create(props(fake, project))
    news = props(fake, project, timeout=600, grace=120, tags=["ephemeros", "lab", "agent", "rack2"])
    diff = provider.diff(created.id, outs(created), news)
    assert diff.changes is True
    assert diff.replaces == []
    updated = provider.update(created.id, outs(created), news)
    check = fake.checks()[0]
    assert (check["timeout"], check["grace"], check["tags"]) == (600, 120, "ephemeros lab agent rack2")
    assert provider.diff(created.id, outs(updated), news).changes is False
    renamed = provider.diff(created.id, outs(updated), {**news, "name": "node7.lab.ephemeros.test"})
    assert renamed.replaces == ["name"]


def test_refresh_notices_changes_and_deletion_by_hand(fake: FakeHealthchecks, project: Project) -> None:
    provider = HeartbeatCheckProvider()
    created = provider.create(props(fake, project))
    fake.checks()[0]["grace"] = 3600  # edited in the web UI
    read = provider.read(created.id, outs(created))
    assert outs(read)["grace"] == 3600
    assert provider.diff(created.id, outs(read), props(fake, project)).changes is True

    del project.checks[outs(created)["uuid"]]  # deleted in the web UI
    assert provider.read(created.id, outs(created)).id is None


def test_delete_removes_the_check_and_tolerates_it_being_gone(fake: FakeHealthchecks, project: Project) -> None:
    provider = HeartbeatCheckProvider()
    created = provider.create(props(fake, project))
    provider.delete(created.id, outs(created))
    assert fake.checks() == []
    provider.delete(created.id, outs(created))  # 404: already gone


def test_429_and_5xx_are_retried_with_backoff(fake: FakeHealthchecks, project: Project) -> None:
    fake.fail_next(429, retry_after=1, error="rate limited")
    fake.fail_next(503, times=2)
    HeartbeatCheckProvider().create(props(fake, project))
    assert len(fake.checks()) == 1
    assert [m for m, path in fake.requests if path == "/api/v3/checks/"] == ["POST"] * 4


def test_an_outage_fails_naming_the_check_and_the_answer(fake: FakeHealthchecks, project: Project) -> None:
    fake.fail_next(500, times=10, error="database is down")
    with pytest.raises(
        HealthchecksError, match=r"check 'node1\.lab\.ephemeros\.test': POST .* answered 500: database is down"
    ):
        HeartbeatCheckProvider().create(props(fake, project))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timeout": 30}, "answered 400: json validation error: timeout is too small"),
        ({"grace": 40000000}, "answered 400: json validation error: grace is too large"),
        ({"channels": "Slack"}, "answered 400: invalid channel identifier: Slack"),
        ({"slug": "Node 1"}, "answered 400: json validation error: slug does not match pattern"),
    ],
)
def test_api_validation_errors_carry_the_apis_message(
    fake: FakeHealthchecks, project: Project, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(HealthchecksError, match=r"check 'node1\.lab\.ephemeros\.test': .*" + message):
        HeartbeatCheckProvider().create(props(fake, project, **changes))


def test_a_wrong_key_is_refused_and_never_repeated(fake: FakeHealthchecks, project: Project) -> None:
    wrong = "f" * 32
    with pytest.raises(HealthchecksError, match=r"answered 401: wrong api key .*read-write API key") as raised:
        HeartbeatCheckProvider().create(props(fake, project, apiKey=wrong))
    assert wrong not in str(raised.value)
    with pytest.raises(HealthchecksError, match="answered 401: wrong api key"):
        HeartbeatCheckProvider().create(props(fake, project, apiKey=project.read_only_key))


def test_the_check_limit_is_reported(fake: FakeHealthchecks) -> None:
    small = fake.add_project(check_limit=1)
    HeartbeatCheckProvider().create(props(fake, small))
    with pytest.raises(HealthchecksError, match=r"answered 403: .*check limit"):
        HeartbeatCheckProvider().create(props(fake, small, name="node2.lab.ephemeros.test"))


# --- the node's heartbeat script ---------------------------------------------------------------------------


DIGEST = "3f2a9c1e0b7d" + "0" * 52
BOOT_DIGEST = "0a1b2c3d4e5f" + "1" * 52
BOOTED = "config 3f2a9c1e0b7d; boot 0a1b2c3d4e5f; flatcar 4593.2.5; k3s version v1.36.4+k3s1"


def reason(body: str) -> str:
    """What a ping's body says about k3s, without the node's name and what it booted."""
    return body.split(": ", 1)[1].removesuffix(f"; {BOOTED}")


def heartbeat(fake: FakeHealthchecks, workdir: Path, role: str, k3s_state: str, ready: bool, **env: str) -> int:
    """Run the node's heartbeat script with stand-ins for systemctl and k3s; curl and the network are real."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\n[ "$2" = --quiet ] || echo {k3s_state}\n[ {k3s_state} = active ]\n')
    health = "echo ok" if ready else "echo not ready >&2; exit 1"
    version = "k3s version v1.36.4+k3s1 (0a1b2c3d)"
    (bin_dir / "k3s").write_text(f'#!/bin/sh\n[ "$1" = --version ] && {{ echo "{version}"; exit 0; }}\n{health}\n')
    (workdir / "config-digest").write_text(DIGEST + "\n")
    (workdir / "cmdline").write_text(f"initrd=x flatcar.first_boot=1 {L.BOOT_DIGEST_ARG}={BOOT_DIGEST} console=tty0\n")
    (workdir / "os-release").write_text('NAME="Flatcar Container Linux by Kinvolk"\nVERSION=4593.2.5\nID=flatcar\n')
    script = render_template("scripts/heartbeat.sh").replace(L.K3S_BINARY, str(bin_dir / "k3s"))
    script = script.replace(L.CONFIG_DIGEST, str(workdir / "config-digest"))
    script = script.replace("/proc/cmdline", str(workdir / "cmdline")).replace(
        "/etc/os-release", str(workdir / "os-release")
    )
    (workdir / "heartbeat").write_text(script)
    for program in bin_dir.iterdir():
        program.chmod(0o755)
    done = subprocess.run(
        ["bash", str(workdir / "heartbeat"), role],
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode


@pytest.fixture
def checks(fake: FakeHealthchecks, project: Project) -> tuple[str, str]:
    node = outs(HeartbeatCheckProvider().create(props(fake, project)))["pingUrl"]
    cluster = outs(HeartbeatCheckProvider().create(props(fake, project, name="cluster lab", slug="cluster-lab")))
    return node, cluster["pingUrl"]


def test_a_healthy_server_pings_its_check_and_the_clusters(
    fake: FakeHealthchecks, checks: tuple[str, str], tmp_path: Path
) -> None:
    node, cluster = checks
    assert heartbeat(fake, tmp_path, "server", "active", True, HEARTBEAT_URL=node, CLUSTER_HEARTBEAT_URL=cluster) == 0
    kinds = [(code, kind) for code, kind, _ in fake.pings]
    assert kinds == [(node.rsplit("/", 1)[1], "success"), (cluster.rsplit("/", 1)[1], "success")]
    assert fake.pings[0][2].endswith(f": k3s server healthy; {BOOTED}")  # what it booted, and which k3s it runs


def test_an_unready_api_server_pings_fail_with_the_reason_and_spares_the_cluster(
    fake: FakeHealthchecks, checks: tuple[str, str], tmp_path: Path
) -> None:
    node, cluster = checks
    heartbeat(fake, tmp_path, "server", "active", False, HEARTBEAT_URL=node, CLUSTER_HEARTBEAT_URL=cluster)
    assert [(kind, reason(body)) for _, kind, body in fake.pings] == [("fail", "API server not ready: not ready")]
    assert fake.check_named("node1.lab.ephemeros.test")["status"] == "down"  # type: ignore[index]


def test_a_stopped_k3s_pings_fail(fake: FakeHealthchecks, checks: tuple[str, str], tmp_path: Path) -> None:
    node, _ = checks
    heartbeat(fake, tmp_path, "agent", "inactive", True, HEARTBEAT_URL=node)
    assert [(kind, reason(body)) for _, kind, body in fake.pings] == [("fail", "k3s.service is inactive")]


def test_an_unreachable_api_fails_without_quoting_the_checks_uuid(fake: FakeHealthchecks, project: Project) -> None:
    created = outs(HeartbeatCheckProvider().create(props(fake, project)))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(HealthchecksError, match=r"GET http://127\.0\.0\.1:\d+/api/v3/checks/ failed") as raised:
        HeartbeatCheckProvider().read("node1", {**created, "apiUrl": closed})
    assert created["uuid"] not in str(raised.value)


def test_an_unreachable_channels_list_is_named_as_it_is(project: Project) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(HealthchecksError) as raised:
        HealthchecksApi(closed, ApiKey.stored(project.api_key)).channel_ids("node1", "email")
    assert f"GET {closed}/api/v3/channels/ failed" in str(raised.value)
    assert "<check>" not in str(raised.value)  # nothing to hide in the channels' URL


# --- what a real Healthchecks server showed -----------------------------------------------------------------


def check_count(fake: FakeHealthchecks) -> int:
    return len(fake.checks())


def test_another_spelling_of_the_api_url_keeps_the_check(fake: FakeHealthchecks, project: Project) -> None:
    provider = HeartbeatCheckProvider()
    created = outs(provider.create(props(fake, project)))
    respelled = props(fake, project, apiUrl=fake.url.replace("127.0.0.1", "localhost"))
    diff = provider.diff("node1", created, respelled)
    assert diff.changes is True
    assert diff.replaces == []  # an update, never a delete of what the new spelling finds
    updated = outs(provider.update("node1", created, respelled))
    assert updated["uuid"] == created["uuid"]
    assert check_count(fake) == 1


def test_a_new_server_gets_the_check_and_the_old_server_loses_it(fake: FakeHealthchecks, project: Project) -> None:
    provider = HeartbeatCheckProvider()
    created = outs(provider.create(props(fake, project)))
    with running(FakeHealthchecks()) as other:
        elsewhere = other.add_project()
        moved = outs(provider.update("node1", created, props(other, elsewhere)))
        assert moved["uuid"] != created["uuid"]
        assert [c["uuid"] for c in other.checks()] == [moved["uuid"]]
    assert check_count(fake) == 0


def test_a_check_adopted_by_another_resource_survives_the_old_ones_deletion(
    fake: FakeHealthchecks, project: Project
) -> None:
    """The cluster was renamed: new resource names, the same check names. Pulumi creates, then deletes the old."""
    provider = HeartbeatCheckProvider()
    old = outs(provider.create(props(fake, project)))
    new = outs(provider.create(props(fake, project)))
    assert new["uuid"] == old["uuid"]  # adopted by its name
    provider.delete("node1", old)
    assert check_count(fake) == 1
    provider.delete("node1", new)
    assert check_count(fake) == 0


def test_channels_edited_by_hand_are_noticed(fake: FakeHealthchecks, project: Project) -> None:
    provider = HeartbeatCheckProvider()
    created = outs(provider.create(props(fake, project)))
    unchanged = outs(provider.read("node1", created))
    assert provider.diff("node1", unchanged, props(fake, project)).changes is False

    fake.checks()[0]["channel_ids"] = [project.channels[0]["id"]]  # the second integration removed by hand
    edited = outs(provider.read("node1", created))
    assert edited["channels"] == project.channels[0]["id"]
    assert provider.diff("node1", edited, props(fake, project)).changes is True
    provider.update("node1", edited, props(fake, project))
    assert fake.checks()[0]["channel_ids"] == [c["id"] for c in project.channels]

    project.channels.append({"id": "6f2c8d10-0000-4000-8000-000000000001", "name": "Slack", "kind": "slack"})
    grown = outs(provider.read("node1", created))
    assert provider.diff("node1", grown, props(fake, project)).changes is True  # "*" now means one more


def configured(key: str) -> HeartbeatCheckProvider:
    provider = HeartbeatCheckProvider()
    provider.configure(ConfigureRequest(Config({f"ephemeros:{healthchecks.API_KEY_SETTING}": key}, "ephemeros")))
    return provider


def test_a_rotated_api_key_is_used_for_refresh_and_delete(fake: FakeHealthchecks, project: Project) -> None:
    created = outs(HeartbeatCheckProvider().create(props(fake, project)))
    project.api_key = "e" * 32  # rotated in the web UI; the state still holds the old key
    with pytest.raises(HealthchecksError, match="the API key stored in the state when the check was last changed"):
        HeartbeatCheckProvider().read("node1", created)
    rotated = configured(project.api_key)
    assert outs(rotated.read("node1", created))["uuid"] == created["uuid"]
    rotated.delete("node1", created)
    assert check_count(fake) == 0


def test_a_refused_configured_key_is_named(fake: FakeHealthchecks, project: Project) -> None:
    created = outs(HeartbeatCheckProvider().create(props(fake, project)))
    project.api_key = "e" * 32
    with pytest.raises(HealthchecksError) as raised:
        configured("d" * 32).read("node1", created)
    assert "the API key in the stack's configuration (healthchecksApiKey)" in str(raised.value)
    assert "d" * 32 not in str(raised.value)


def api(fake: FakeHealthchecks, project: Project, body: object) -> requests.Response:
    return requests.post(f"{fake.url}/api/v3/checks/", json=body, headers={"X-Api-Key": project.api_key}, timeout=5)


def test_the_fake_answers_as_the_real_server_was_seen_to(fake: FakeHealthchecks, project: Project) -> None:
    assert api(fake, project, {"name": "x", "timeout": True}).json() == {
        "error": "json validation error: timeout is too small"
    }
    assert api(fake, project, ["name"]).json() == {"error": "json validation error: value is not an object"}
    check = api(fake, project, {"name": "x"}).json()
    assert {"badge_url", "filter_http_body", "filter_default_fail"} <= check.keys()
    for suffix, status in (("/log", "new"), ("/0", "up"), ("/1", "down")):
        assert requests.post(check["ping_url"] + suffix, data="body", timeout=5).status_code == 200
        assert fake.check_named("x")["status"] == status  # type: ignore[index]


def test_the_check_limit_counts_every_project_of_the_account(fake: FakeHealthchecks) -> None:
    account = Account(check_limit=2)
    first, second = fake.add_project(account=account), fake.add_project(account=account)
    assert api(fake, first, {"name": "a"}).status_code == 201
    assert api(fake, second, {"name": "b"}).status_code == 201
    refused = api(fake, second, {"name": "c"})
    assert (refused.status_code, refused.text, refused.headers["Content-Type"]) == (403, "", "text/html")
