"""The Vultr datastore under the real engine, against the local Vultr API server (harness/fakes/vultr.py).

One scenario (see tests/conftest.py): a stack with datastore.type vultr is checked against Vultr at preview (its
key, region, plan and OS; an image Vultr retired is a warning for the VM that runs it), brought up, changed in
place, refused a change that would replace its VM, refreshed after a deletion by hand (a new VM, and a warning
that its database is new), replaced on purpose as README says (another region; another operating system, which
keeps the address), kept from destroy by protection, and refused a password rotation it cannot apply. Whether
PostgreSQL itself answers is tested against a real VM in tests/test_datastore_vm.py; here waitForPostgres is off,
as it is for a machine outside allowedSources.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from base import node_layout as L
from harness.fakes.vultr import Account, FakeVultr, running
from harness.processes import free_port
from harness.pulumi_project import PulumiProject
from harness.stack import SECRET_VALUES, stack_settings
from harness.stick import secret_file

pytestmark = [pytest.mark.engine, pytest.mark.scenario]
SOURCE = "203.0.113.7/32"
DEBIAN = "Debian 12 x64 (bookworm)"


@dataclass
class World:
    project: PulumiProject
    fake: FakeVultr
    account: Account


def settings(fake: FakeVultr) -> dict[str, Any]:
    doc = stack_settings("dev")
    doc["datastore"] = {
        "type": "vultr",
        "vultr": {"region": "ams", "allowedSources": [SOURCE], "apiUrl": fake.url, "waitForPostgres": False},
        "dumps": {"endpoint": "https://s3.eu-central-003.backblazeb2.com", "bucket": "lab-dumps", "prefix": "dev/"},
    }
    return doc


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running(FakeVultr()) as fake:
        account = fake.add_account()
        project = PulumiProject(tmp_path_factory.mktemp("engine") / "ephemeros", "datastore")
        project.init(settings(fake))
        project.set_secret("vultrApiKey", account.api_key)
        project.set_secret("dumpsAccessKeyId", SECRET_VALUES["dumpsAccessKeyId"])
        project.set_secret("dumpsSecretAccessKey", SECRET_VALUES["dumpsSecretAccessKey"])
        yield World(project, fake, account)
        for urn in (r["urn"] for r in project.resources() if r.get("protect")):
            project.run("state", "unprotect", urn, "--yes", check=False)
        project.run("destroy", "--yes", check=False)


def ops(project: PulumiProject) -> list[tuple[str, str]]:
    return sorted((s["op"], s["urn"].split("::")[-1]) for s in project.preview_steps())


def instance(world: World) -> dict[str, Any]:
    (found,) = world.fake.instances()
    return found


def rules(world: World) -> list[tuple[str, int, str]]:
    (group,) = world.account.firewall_groups.values()
    return sorted((r["subnet"], r["subnet_size"], r["port"]) for r in group.rules.values())


def state_ids(project: PulumiProject, type_suffix: str) -> list[str]:
    return [r["id"] for r in project.resources() if r["type"].endswith(type_suffix)]


def unprotect(project: PulumiProject, *type_suffixes: str) -> None:
    """`pulumi state unprotect` the resources of these types, as README's "Replacing the datastore" says."""
    for resource in project.resources():
        if resource["type"].endswith(type_suffixes):
            project.run("state", "unprotect", resource["urn"], "--yes")


def test_preview_checks_the_key_region_plan_and_os_with_vultr(world: World) -> None:
    project, fake = world.project, world.fake
    project.run("config", "set", "--path", "datastore.vultr.region", "mars")
    project.run("config", "set", "--path", "datastore.vultr.os", "Debian 13 x64 (trixie)")
    project.set_secret("vultrApiKey", "NOT" + world.account.api_key[3:])
    done = project.run("preview", check=False)
    assert done.returncode != 0
    assert "the stack cannot run as configured, here or at its services: 3 problem(s)" in done.stdout
    assert "ephemeros:vultrApiKey: Vultr refuses the key: Vultr API: GET /v2/account answered 401" in done.stdout
    assert "ephemeros:datastore.vultr.region: Vultr offers no region 'mars' (GET /v2/regions)" in done.stdout
    os_refused = "ephemeros:datastore.vultr.os: Vultr offers no operating system 'Debian 13 x64 (trixie)' (GET /v2/os)"
    assert os_refused in done.stdout
    assert re.search(r"\(GET /v2/os\); close matches: .*Debian 12 x64 \(bookworm\)", done.stdout)

    project.set_secret("vultrApiKey", world.account.api_key)
    project.run("config", "set", "--path", "datastore.vultr.region", "ams")
    project.run("config", "set", "--path", "datastore.vultr.os", "Debian 12 x64 (bookworm)")
    project.run("config", "set", "--path", "datastore.vultr.plan", "vhf-1c-1gb")  # sold in ewr only
    done = project.run("preview", check=False)
    assert (
        "ephemeros:datastore.vultr.plan: Vultr does not offer vhf-1c-1gb in region ams (GET /v2/plans lists it "
        "in ewr)" in done.stdout
    )
    project.run("config", "set", "--path", "datastore.vultr.plan", "vc2-1c-1gb")
    assert fake.requests_to("GET", "/v2/plans"), "the catalog was asked"
    assert not fake.requests_to("POST", "/v2/instances")


def test_an_api_that_does_not_answer_is_a_warning_at_preview(world: World) -> None:
    project = world.project
    project.run("config", "set", "--path", "datastore.vultr.apiUrl", f"http://127.0.0.1:{free_port()}")
    done = project.run("preview")
    assert "the services the stack uses were checked, with 1 warning(s)" in done.stdout
    assert "datastore.vultr: the Vultr API at http://127.0.0.1:" in done.stdout
    project.run("config", "set", "--path", "datastore.vultr.apiUrl", world.fake.url)


def test_up_makes_the_vm_its_address_firewall_and_tls(world: World) -> None:
    project, fake = world.project, world.fake
    project.run("up", "--yes")
    vm = instance(world)
    (reserved,) = world.account.reserved_ips.values()
    assert vm["main_ip"] == reserved["subnet"]  # the reserved address is the VM's own
    assert (vm["status"], vm["power_status"], vm["server_status"]) == ("active", "running", "ok")
    assert (vm["region"], vm["plan"], vm["os"]) == ("ams", "vc2-1c-1gb", "Debian 12 x64 (bookworm)")
    assert "auto_backups" in vm["features"]
    assert rules(world) == [("203.0.113.7", 32, "5432")]  # and no SSH: adminSources is empty

    output = project.stack_output("datastore")
    assert output["address"] == reserved["subnet"]
    assert (output["port"], output["database"]) == (5432, "k3s")
    assert output["vm"] == {"id": vm["id"], "state": "active, running, ok"}
    assert output["lastCheck"].startswith("not checked")
    assert "password" not in json.dumps(output).lower()
    ca = x509.load_pem_x509_certificate(output["caCertificate"].encode())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    user_data = base64.b64decode(fake.requests_to("POST", "/v2/instances")[0].body["user_data"]).decode()
    (project.dir / "user-data").write_text(user_data)
    schema = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(project.dir / "user-data")], capture_output=True, text=True
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    certificate = user_data.split("path: /etc/ephemeros/server.crt\n  content: |\n")[1].split("  owner:")[0]
    served = x509.load_pem_x509_certificate("\n".join(line.strip() for line in certificate.splitlines()).encode())
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == [reserved["subnet"]]


def test_servers_carry_the_endpoint_and_the_ca_agents_do_not(world: World) -> None:
    nodes = world.project.stack_output("nodes")
    address = world.project.stack_output("datastore")["address"]
    env = secret_file(Path(nodes["node0"]["stickImage"]), L.DATASTORE_ENV)
    assert env is not None
    assert f"@{address}:5432/k3s?sslmode=verify-full" in env
    assert f'K3S_DATASTORE_CAFILE="{L.SECRETS_DIR}/{L.DATASTORE_CA}"' in env
    ca = secret_file(Path(nodes["node0"]["stickImage"]), L.DATASTORE_CA)
    assert ca == world.project.stack_output("datastore")["caCertificate"]
    assert secret_file(Path(nodes["node1"]["stickImage"]), L.DATASTORE_ENV) is None


def test_a_second_preview_has_no_changes(world: World) -> None:
    world.project.run("preview", "--expect-no-changes")


def test_an_image_vultr_retired_is_a_warning_for_the_vm_that_runs_it(world: World) -> None:
    project, fake = world.project, world.fake
    fake.retire_os(DEBIAN)
    try:
        done = project.run("up", "--yes")  # nothing is made with it: the VM runs on
        assert f"datastore.vultr.os: Vultr offers no operating system '{DEBIAN}' (GET /v2/os)" in done.stdout
        assert "The datastore VM, which runs with it, runs on; but no new VM could be made so" in done.stdout
        project.run("preview", "--expect-no-changes")
        project.run("config", "set", "--path", "datastore.vultr.os", "Debian 13 x64 (trixie)")  # a new VM's
        done = project.run("preview", check=False)
        assert done.returncode != 0
        assert "ephemeros:datastore.vultr.os: Vultr offers no operating system 'Debian 13 x64 (trixie)'" in done.stdout
    finally:
        fake.retire_os(DEBIAN, retired=False)
    project.run("config", "set", "--path", "datastore.vultr.os", DEBIAN)
    project.run("preview", "--expect-no-changes")


@pytest.mark.parametrize("suffix", ["/", "/v2", "/v2/"])
def test_the_api_url_with_its_version_root_or_a_slash_is_the_same_api(world: World, suffix: str) -> None:
    project = world.project
    project.run("config", "set", "--path", "datastore.vultr.apiUrl", world.fake.url + suffix)
    project.run("preview", "--expect-no-changes")
    project.run("config", "set", "--path", "datastore.vultr.apiUrl", world.fake.url)


def test_sources_backups_and_plan_change_in_place(world: World) -> None:
    project = world.project
    vm_id = instance(world)["id"]
    project.run("config", "set", "--path", "datastore.vultr.allowedSources[0]", "203.0.113.8/32")
    project.run("config", "set", "--path", "datastore.vultr.backups.hour", "5")
    project.run("config", "set", "--path", "datastore.vultr.plan", "vc2-2c-4gb")
    steps = ops(project)
    assert ("update", "dev-datastore-vm") in steps
    assert not any(name == "dev-datastore-vm" and op != "update" for op, name in steps)
    assert ("create", "dev-datastore-postgres-203-0-113-8-32") in steps
    assert ("delete", "dev-datastore-postgres-203-0-113-7-32") in steps
    project.run("up", "--yes")
    vm = instance(world)
    assert (vm["id"], vm["plan"]) == (vm_id, "vc2-2c-4gb")
    assert rules(world) == [("203.0.113.8", 32, "5432")]
    schedule = world.account.instances[vm_id].backup_schedule
    assert (schedule["type"], schedule["hour"]) == ("daily", 5)
    project.run("preview", "--expect-no-changes")


def test_a_new_label_changes_in_place(world: World) -> None:
    """The reserved IP is relabelled too, and its address is not known during that preview: the VM is not replaced
    for it (the same reserved IP keeps its address)."""
    project = world.project
    vm_id = instance(world)["id"]
    project.run("config", "set", "--path", "datastore.vultr.label", "the k3s datastore")
    steps = ops(project)
    assert ("update", "dev-datastore-vm") in steps
    assert ("update", "dev-datastore-address") in steps
    assert not any(name in ("dev-datastore-vm", "dev-datastore-address") and op != "update" for op, name in steps)
    project.run("up", "--yes")
    (reserved,) = world.account.reserved_ips.values()
    assert (instance(world)["id"], instance(world)["label"]) == (vm_id, "the k3s datastore")
    assert reserved["label"].startswith("the k3s datastore [ephemeros ")  # with its owner's mark
    project.run("preview", "--expect-no-changes")


def test_a_change_that_would_replace_the_vm_fails_at_preview(world: World) -> None:
    project = world.project
    project.run("config", "set", "--path", "datastore.vultr.region", "fra")
    done = project.run("preview", check=False)
    assert done.returncode != 0
    assert "ephemeros:datastore.vultr.region: this change would replace the datastore VM" in done.stdout
    assert "its database would be lost" in done.stdout
    # The new reserved IP and the names in the certificate are not known yet: unknown, not changed.
    assert "Unknown object" not in done.stdout
    refused = set(re.findall(r"ephemeros:([^:]+): this change would replace the datastore VM", done.stdout))
    assert refused == {"datastore.vultr.region"}
    project.run("config", "set", "--path", "datastore.vultr.region", "ams")
    project.run("preview", "--expect-no-changes")


def test_the_new_vm_only_warning_shows_with_other_changes_too(world: World) -> None:
    project = world.project
    assert "cloud-init user data has changed" not in project.run("preview").stdout
    project.run("config", "set", "--path", "datastore.vultr.tags[0]", "k3s")  # changes in place
    project.run("config", "set", "--path", "rotate.datastorePassword", "7")
    project.set_secret("dumpsSecretAccessKey", "K003rotated+dumps/secret0key")
    done = project.run("preview")
    assert "cloud-init user data has changed since the VM was made" in done.stdout
    steps = ops(project)
    assert ("update", "dev-datastore-vm") in steps
    assert ("replace", "dev-datastore-password") in steps
    project.run("config", "rm", "--path", "datastore.vultr.tags")
    project.run("config", "rm", "--path", "rotate.datastorePassword")
    project.set_secret("dumpsSecretAccessKey", SECRET_VALUES["dumpsSecretAccessKey"])
    project.run("preview", "--expect-no-changes")


def test_a_setting_read_once_warns_that_it_applies_to_a_new_vm_only(world: World) -> None:
    project = world.project
    vm_id = instance(world)["id"]
    project.run("config", "set", "--path", "datastore.vultr.maxConnections", "200")
    done = project.run("preview")
    assert "cloud-init user data has changed since the VM was made" in done.stdout
    assert ops(project) == []  # nothing to do: the VM stays
    project.run("up", "--yes")
    assert instance(world)["id"] == vm_id


def test_refresh_notices_the_vm_deleted_by_hand(world: World) -> None:
    project, fake = world.project, world.fake
    old = instance(world)["id"]
    fake.remove_instance(old)
    project.run("refresh", "--yes")
    steps = ops(project)
    assert ("create", "dev-datastore-vm") in steps  # the database is gone with it: a new, empty one
    assert ("update", "dev-datastore-login") in steps  # checked again, on the new VM
    preview = project.run("preview")
    assert "the datastore VM will be made anew" in preview.stdout
    assert "a new VM is a new, empty database" in preview.stdout
    assert "cloud-init user data has changed" not in preview.stdout  # a new VM is made with the user data of now
    project.run("up", "--yes")
    assert len(fake.instances()) == 1
    logins = [r for r in project.resources() if r["type"].endswith(":DatastoreLogin")]
    assert [r["outputs"]["instanceId"] for r in logins] == [instance(world)["id"]] != [old]
    project.run("preview", "--expect-no-changes")


def test_replacing_the_datastore_in_another_region_as_readme_says(world: World) -> None:
    """The new VM and address are made, the old ones deleted: none of them is taken for the other."""
    project, account = world.project, world.account
    old_vm, (old_address,) = instance(world)["id"], account.reserved_ips
    project.run("config", "set", "--path", "datastore.vultr.allowReplacement", "true")
    project.run("config", "set", "--path", "datastore.vultr.region", "fra")
    unprotect(project, ":VultrInstance", ":VultrReservedIp")
    project.run("up", "--yes")
    vm = instance(world)
    (reserved,) = account.reserved_ips.values()
    assert vm["id"] != old_vm
    assert reserved["id"] != old_address
    assert (vm["region"], reserved["region"], vm["main_ip"]) == ("fra", "fra", reserved["subnet"])
    assert state_ids(project, ":VultrInstance") == [vm["id"]]
    assert state_ids(project, ":VultrReservedIp") == [reserved["id"]]
    assert project.stack_output("datastore")["address"] == reserved["subnet"]
    project.run("config", "rm", "--path", "datastore.vultr.allowReplacement")
    project.run("preview", "--expect-no-changes")


def test_a_new_operating_system_replaces_the_vm_and_keeps_its_address(world: World) -> None:
    """Vultr gives a reserved IP to one VM at a time: the old VM goes first, and the new one gets the address."""
    project, account = world.project, world.account
    old_vm, ((address_id, address),) = instance(world)["id"], account.reserved_ips.items()
    project.run("config", "set", "--path", "datastore.vultr.allowReplacement", "true")
    project.run("config", "set", "--path", "datastore.vultr.os", "Debian 11 x64 (bullseye)")
    unprotect(project, ":VultrInstance")
    project.run("up", "--yes")
    vm = instance(world)
    assert vm["id"] != old_vm
    assert (vm["os"], vm["main_ip"]) == ("Debian 11 x64 (bullseye)", address["subnet"])
    assert list(account.reserved_ips) == [address_id]
    assert state_ids(project, ":VultrInstance") == [vm["id"]]
    project.run("config", "rm", "--path", "datastore.vultr.allowReplacement")
    project.run("preview", "--expect-no-changes")


def test_destroy_stops_at_the_protected_vm_and_address(world: World) -> None:
    done = world.project.run("destroy", "--yes", check=False)
    assert done.returncode != 0
    assert "protected" in done.stdout + done.stderr
    assert len(world.fake.instances()) == 1
    assert len(world.account.reserved_ips) == 1


def generated_secrets(project: PulumiProject) -> list[str]:
    """The datastore's password, and the first line of each private key, as the state holds them decrypted."""
    exported = json.loads(project.run("stack", "export", "--show-secrets", record=False).stdout)
    found = []
    for resource in exported["deployment"]["resources"]:
        outputs = resource.get("outputs", {})
        if resource["type"].endswith(":RandomSecret"):
            found.append(json.loads(outputs["result"]["plaintext"]))
        if resource["type"].endswith(":PrivateKey"):
            found.append(json.loads(outputs["pem"]["plaintext"]).splitlines()[1])
    return found


def test_no_credential_or_key_is_in_plain_state_or_output(world: World) -> None:
    project = world.project
    generated = generated_secrets(project)
    cluster_keys = 2 + len(L.K3S_LEAF_CAS) + 2  # root and intermediate, the CAs k3s reads, service and admin keys
    assert len(generated) == 2 + 3 + 3 + cluster_keys  # tokens, node passwords; datastore password and its two keys
    state = project.state_file.read_text()
    for secret in [
        world.account.api_key,
        SECRET_VALUES["dumpsAccessKeyId"],
        SECRET_VALUES["dumpsSecretAccessKey"],
        *generated,
    ]:
        assert secret not in state
        for output in project.outputs:
            assert secret not in output


def test_a_password_rotation_that_cannot_reach_postgres_fails_clearly(world: World) -> None:
    project = world.project
    vm_id = instance(world)["id"]
    project.run("config", "set", "--path", "rotate.datastorePassword", "1")
    steps = ops(project)
    assert ("replace", "dev-datastore-password") in steps
    assert ("update", "dev-datastore-login") in steps
    assert not any(name == "dev-datastore-vm" for _, name in steps)  # never a new VM for a new password
    done = project.run("up", "--yes", check=False)
    assert done.returncode != 0
    assert "changing the datastore's password in place needs this machine to log in to PostgreSQL" in done.stdout
    assert instance(world)["id"] == vm_id
