"""Whose objects at Vultr are whose, under the real engine (harness/fakes/vultr.py, harness/fakes/healthchecks.py).

One scenario (see tests/conftest.py): two stacks of one name, in two DIY backends (each calls its organization
"organization"), with the same settings and one Vultr account, each make and keep objects of their own, as the
datastore's owner id (a random id in each stack's state) is in every mark. A check changed at healthchecks with a
setting the VM reads once still shows the "new VM only" warning, as the datastore's checks get their known ping
URLs. Then one stack is taken back to the state an ephemeros before owner ids left (its objects marked as that
one marked them, no owner id): it keeps its objects, and is replaced on purpose in another region without losing
either stack's objects.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from harness.fakes import healthchecks, vultr
from harness.fakes.healthchecks import FakeHealthchecks
from harness.fakes.vultr import Account, FakeVultr
from harness.pulumi_project import PulumiProject
from harness.stack import SECRET_VALUES, stack_settings

pytestmark = [pytest.mark.engine, pytest.mark.scenario]
STACK = "lab"
VULTR_TYPES = (":VultrReservedIp", ":VultrFirewallGroup", ":VultrFirewallRule", ":VultrInstance")


@dataclass
class World:
    vultr: FakeVultr
    account: Account
    healthchecks: FakeHealthchecks
    first: PulumiProject
    second: PulumiProject


def new_stack(workdir: Any, fake: FakeVultr, account: Account, checks: FakeHealthchecks) -> PulumiProject:
    project = PulumiProject(workdir, STACK)  # a file backend of its own
    doc = stack_settings("dev")
    doc["heartbeat"] = {"provider": "healthchecks", "apiUrl": checks.url}
    doc["datastore"] = {
        "type": "vultr",
        "vultr": {"region": "ams", "allowedSources": ["203.0.113.7/32"], "apiUrl": fake.url, "waitForPostgres": False},
        "dumps": {"endpoint": "https://s3.eu-central-003.backblazeb2.com", "bucket": "lab-dumps", "prefix": "lab/"},
    }
    project.init(doc)
    project.set_secret("vultrApiKey", account.api_key)
    project.set_secret("healthchecksApiKey", checks.add_project().api_key)  # the same check names, apart
    project.set_secret("dumpsAccessKeyId", SECRET_VALUES["dumpsAccessKeyId"])
    project.set_secret("dumpsSecretAccessKey", SECRET_VALUES["dumpsSecretAccessKey"])
    return project


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with vultr.running(FakeVultr()) as fake, healthchecks.running(FakeHealthchecks()) as checks:
        account = fake.add_account()
        workdir = tmp_path_factory.mktemp("owners")
        projects = [new_stack(workdir / name / "ephemeros", fake, account, checks) for name in ("first", "second")]
        yield World(fake, account, checks, *projects)
        for project in projects:
            for urn in (r["urn"] for r in project.resources() if r.get("protect")):
                project.run("state", "unprotect", urn, "--yes", check=False)
            project.run("destroy", "--yes", check=False)


def vultr_ids(project: PulumiProject) -> dict[str, str]:
    """The stack's Vultr objects as its state records them: resource name -> id (a rule's with its group's)."""
    return {
        r["urn"].split("::")[-1]: f"{r['outputs']['groupId']}/{r['id']}"
        if r["type"].endswith(":VultrFirewallRule")
        else r["id"]
        for r in project.resources()
        if r["type"].endswith(VULTR_TYPES)
    }


def at_vultr(world: World) -> dict[str, set[str]]:
    account = world.account
    rules = {f"{group_id}/{rule}" for group_id, group in account.firewall_groups.items() for rule in group.rules}
    return {
        "instances": set(account.instances),
        "reserved IPs": set(account.reserved_ips),
        "firewall groups": set(account.firewall_groups),
        "firewall rules": rules,
    }


def test_two_stacks_of_one_name_in_two_backends_keep_their_own_objects(world: World) -> None:
    world.first.run("up", "--yes")
    world.second.run("up", "--yes")
    first, second = vultr_ids(world.first), vultr_ids(world.second)
    assert first.keys() == second.keys()
    assert len(first) == 4
    assert not set(first.values()) & set(second.values())  # nothing of the one adopted by the other
    found = at_vultr(world)
    assert {kind: len(ids) for kind, ids in found.items()} == {
        "instances": 2,
        "reserved IPs": 2,
        "firewall groups": 2,
        "firewall rules": 2,
    }
    assert set(first.values()) | set(second.values()) == set().union(*found.values())
    for project in (world.first, world.second):
        project.run("preview", "--expect-no-changes")


def test_a_changed_check_still_lets_preview_say_the_user_data_changed(world: World) -> None:
    """The datastore's dumps and restore checks change with heartbeat.grace; their ping URLs, known at preview,
    keep the user data's digest known, so that a setting read once (maxConnections) is still warned about."""
    project = world.first
    project.run("config", "set", "--path", "heartbeat.grace", "7200")
    project.run("config", "set", "--path", "datastore.vultr.maxConnections", "200")
    done = project.run("preview", "--diff")  # its warnings go to stderr
    assert "cloud-init user data has changed since the VM was made" in done.stdout + done.stderr
    assert "dev-datastore-dumps-heartbeat" in done.stdout  # the check is updated in the same preview
    project.run("config", "rm", "--path", "heartbeat.grace")
    project.run("config", "rm", "--path", "datastore.vultr.maxConnections")
    project.run("preview", "--expect-no-changes")


def legacy_mark(name: str) -> str:
    """The mark an ephemeros before owner ids gave the resource `name` of this stack."""
    return hashlib.sha256(f"organization/ephemeros/{STACK}/{name}".encode()).hexdigest()[:16]


def remark(world: World, old: str, new: str) -> None:
    """Objects at Vultr marked `old` marked `new` instead, as if they had been made with it."""
    account = world.account

    def swapped(text: str) -> str:
        return text.replace(f" [ephemeros {old}]", f" [ephemeros {new}]")

    for reserved in account.reserved_ips.values():
        reserved["label"] = swapped(reserved["label"])
    for group in account.firewall_groups.values():
        group.fields["description"] = swapped(group.fields["description"])
        for rule in group.rules.values():
            rule["notes"] = swapped(rule["notes"])
    for instance in account.instances.values():
        instance.fields["tags"] = [
            f"ephemeros-{new}" if tag == f"ephemeros-{old}" else tag for tag in instance.fields["tags"]
        ]


def test_a_stack_made_before_owner_ids_keeps_its_objects(world: World) -> None:
    """As an ephemeros before owner ids left it: no owner id, no `owner` in the Vultr resources, each marked with a
    hash of organization, project, stack and resource name, at Vultr and in the state."""
    project = world.second
    before = vultr_ids(project)
    exported = json.loads(project.run("stack", "export").stdout)
    resources = exported["deployment"]["resources"]
    (owner_urn,) = [r["urn"] for r in resources if r["type"].endswith(":RandomId")]
    kept = []
    for resource in resources:
        if resource["urn"] == owner_urn:
            continue
        resource["dependencies"] = [urn for urn in resource.get("dependencies", []) if urn != owner_urn]
        if "propertyDependencies" in resource:
            resource["propertyDependencies"].pop("owner", None)
        if resource["type"].endswith(VULTR_TYPES):
            mark = legacy_mark(resource["urn"].split("::")[-1])
            remark(world, resource["outputs"]["mark"], mark)
            for part in ("inputs", "outputs"):
                resource[part].pop("owner")
                resource[part]["mark"] = mark
        kept.append(resource)
    exported["deployment"]["resources"] = kept
    (project.dir / "before-owner-ids.json").write_text(json.dumps(exported))
    project.run("stack", "import", "--file", str(project.dir / "before-owner-ids.json"))

    steps = sorted((s["op"], s["urn"].split("::")[-1]) for s in project.preview_steps())
    assert steps == [("create", "dev-datastore-owner")]  # nothing at Vultr changes
    project.run("up", "--yes")
    assert vultr_ids(project) == before
    project.run("refresh", "--yes", "--expect-no-changes")  # each object read back with the mark it was made with
    project.run("preview", "--expect-no-changes")


def test_that_stack_is_replaced_on_purpose_and_nothing_else_is_lost(world: World) -> None:
    project, account = world.second, world.account
    before, others = vultr_ids(project), vultr_ids(world.first)
    project.run("config", "set", "--path", "datastore.vultr.allowReplacement", "true")
    project.run("config", "set", "--path", "datastore.vultr.region", "fra")
    for resource in project.resources():
        if resource["type"].endswith((":VultrInstance", ":VultrReservedIp")):
            project.run("state", "unprotect", resource["urn"], "--yes")
    project.run("up", "--yes")
    after = vultr_ids(project)
    vm, address = after["dev-datastore-vm"], after["dev-datastore-address"]
    assert vm != before["dev-datastore-vm"]
    assert address != before["dev-datastore-address"]
    assert account.instances[vm].fields["region"] == "fra"
    assert account.instances[vm].fields["main_ip"] == account.reserved_ips[address]["subnet"]
    assert vultr_ids(world.first) == others
    assert at_vultr(world)["instances"] == {vm, others["dev-datastore-vm"]}
    assert at_vultr(world)["reserved IPs"] == {address, others["dev-datastore-address"]}
    project.run("config", "rm", "--path", "datastore.vultr.allowReplacement")
    project.run("preview", "--expect-no-changes")
