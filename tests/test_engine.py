"""The program under the real Pulumi engine (file backend, passphrase secrets): a stack's whole life.

One scenario (see tests/conftest.py): the steps run in order against one stack made from the dev stack's
settings, because what is under test is how a stack changes from one `pulumi up` to the next (a no-change
preview after an up, an update touching only its dependents, a rotation, a refresh after a hand edit, destroy),
and making a fresh stack for each step would take longer than the steps themselves.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from base import node_layout as L
from harness import ignition_tools
from harness.loop_device import loop_device
from harness.pulumi_project import PulumiProject, make_env
from harness.stack import SECRET_VALUES, stack_settings

pytestmark = [pytest.mark.engine, pytest.mark.scenario]

HOSTS = [n["hostname"] for n in stack_settings("dev")["nodes"]]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulumiProject]:
    project = PulumiProject(tmp_path_factory.mktemp("engine") / "ephemeros", "enginetest")
    project.init(stack_settings("dev"))
    yield project
    project.run("destroy", "--yes", check=False)


def names(steps: list[dict[str, object]]) -> list[tuple[object, str]]:
    return sorted((s["op"], str(s["urn"]).split("::")[-1]) for s in steps)


def test_the_project_sets_offline_engine_settings() -> None:
    env = make_env()
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    assert env["PULUMI_BACKEND_URL"].startswith("file://")
    assert env["PATH"].split(":")[0].endswith("/.tools/bin")


def test_preview_plans_the_cluster(project: PulumiProject) -> None:
    output = project.run("preview").stdout
    # One block, printed once: not also on the stack's progress rows.
    assert output.count("the stack configuration works, with 3 warning(s):") == 1, output
    for warning in ("ignitionBaseUrl is plain http", "datastore.type is sqlite", "sshKeys[0] is the dev stack's"):
        assert output.count(warning) == 1, output  # each warning once
    steps = project.preview_steps()
    created = {name for op, name in names(steps) if op == "create"}
    assert {f"dev-{h}-ignition" for h in HOSTS} <= created
    assert {"dev-secrets-server-token", "dev-secrets-agent-token"} <= created
    assert {op for op, _ in names(steps)} == {"create"}


def test_up_creates_the_cluster_and_exports_nodes(project: PulumiProject) -> None:
    output = project.run("up", "--yes").stdout
    assert output.count("ignitionBaseUrl is plain http") == 1  # once, although `up` runs the program twice
    assert output.count("the stack configuration works, with") == 1, output
    nodes = project.stack_output("nodes")
    assert sorted(nodes) == HOSTS
    for hostname, node in nodes.items():
        assert node["role"] == ("server" if hostname == "node0" else "agent")
        assert node["ignitionUrl"] == f"http://10.0.2.2:8080/{hostname}.ign"
        path = Path(node["ignitionFile"])
        assert path == project.build_dir / "ignition" / f"{hostname}.ign"
        done = ignition_tools.validate(path)
        assert done.returncode == 0, done.stderr
        stick = Path(node["stickImage"])
        assert stick == project.build_dir / "sticks" / f"{hostname}.img"
        assert stick.stat().st_mode & 0o7777 == 0o600
        assert stick.stat().st_size <= 64 * 1024 * 1024
        assert node["stickSha256"] == hashlib.sha256(stick.read_bytes()).hexdigest()


def test_a_second_preview_has_no_changes(project: PulumiProject) -> None:
    project.run("preview", "--expect-no-changes")


def test_the_state_keeps_each_resource_once_and_lean(project: PulumiProject) -> None:
    """The engine writes the whole state after every step of an update: it holds each large input once (the
    outputs keep its digest), and of each resource's call stack only the project's own frames (stack/sdk.py)."""
    resources = project.resources()
    for resource in resources[1:]:  # the stack itself is registered by the SDK before the program runs
        assert resource["type"] != "pulumi:pulumi:Stack"
        frames = [frame.get("sourcePosition", "") for frame in resource.get("stackTrace") or []]
        assert all(f.startswith("project:///") and "/.venv/" not in f for f in frames), (resource["urn"], frames)
    ignition = next(r for r in resources if r["type"].endswith(":IgnitionFile"))
    assert ignition["outputs"]["config"].startswith("sha256:")
    assert isinstance(ignition["inputs"]["config"], dict)


def test_a_config_change_updates_only_what_depends_on_it(project: PulumiProject) -> None:
    project.run("config", "set", "--path", 'nodes[1].labels["ephemeros.io/disk"]', "ssd")
    assert names(project.preview_steps()) == [("update", "dev-node1-ignition")]
    diff = project.run("preview", "--diff").stdout
    # The diff names the file on the node and shows the changed value as text, not as a data: URL.
    assert "~ /etc/rancher/k3s/config.yaml: {" in diff
    assert '"ephemeros.io/disk=ssd"' in diff
    assert "data:," not in diff
    project.run("up", "--yes")
    assert "ephemeros.io/disk=ssd" in unquote((project.build_dir / "ignition/node1.ign").read_text())
    project.run("preview", "--expect-no-changes")


def test_a_new_flatcar_and_kernel_arguments_change_no_stick(project: PulumiProject) -> None:
    """What Flatcar a node boots, from where and with which kernel arguments is served, not on its stick: a change
    rewrites the node's boot script and reaches it at its next boot, with the stick's bytes as they were."""
    before = project.stack_output("nodes")
    settings = project.config_document()
    settings["flatcar"] = {
        "version": "4593.2.6",
        "baseUrl": "http://flatcar.lan.test/amd64-usr",
        "kernelArgs": ["console=ttyS0,115200n8", "console=tty0", "quiet"],
    }
    settings["nodes"][2]["kernelArgs"] = ["nomodeset"]
    project.write_config_document(settings)
    assert names(project.preview_steps()) == [("update", f"dev-{h}-ignition") for h in HOSTS]  # the boot scripts
    diff = project.run("preview", "--diff").stdout
    assert "-stick" not in diff  # no stick shows a change, not even an unknown one
    project.run("up", "--yes")
    after = project.stack_output("nodes")
    for hostname in HOSTS:
        assert after[hostname]["stickSha256"] == before[hostname]["stickSha256"]
        assert after[hostname]["bootDigest"] != before[hostname]["bootDigest"]
        assert after[hostname]["flatcarVersion"] == "4593.2.6"
        script = (project.build_dir / "ignition" / L.boot_script_name(hostname)).read_text()
        assert after[hostname]["bootScriptUrl"] == f"http://10.0.2.2:8080/{L.boot_script_name(hostname)}"
        assert "set base-url http://flatcar.lan.test/amd64-usr/4593.2.6\n" in script
        assert " quiet " in script
        assert (" nomodeset " in script) == (hostname == "node2")
        assert f" {L.BOOT_DIGEST_ARG}={after[hostname]['bootDigest']} " in script
    project.run("preview", "--expect-no-changes")


def test_secrets_are_stable_and_rotate_only_on_request(project: PulumiProject) -> None:
    before = project.stack_output("nodes")
    project.run("config", "set", "--path", "rotate.agentToken", "1")
    steps = names(project.preview_steps())
    assert ("replace", "dev-secrets-agent-token") in steps
    # Every stick carries the agent token (agents to join, servers to accept them), so every image is rebuilt.
    assert sorted(s for s in steps if s[1].endswith("-stick")) == [("update", f"dev-{h}-stick") for h in HOSTS]
    assert len(steps) == 1 + len(HOSTS)
    project.run("up", "--yes")
    after = project.stack_output("nodes")
    assert all(after[h]["stickSha256"] != before[h]["stickSha256"] for h in HOSTS)
    assert all(after[h]["ignitionFile"] == before[h]["ignitionFile"] for h in HOSTS)
    project.run("preview", "--expect-no-changes")


def test_no_generated_secret_is_in_plain_state_or_output(project: PulumiProject) -> None:
    secrets = project.generated_secrets()
    assert len(secrets) == 2 + len(HOSTS)
    keys = project.private_keys()
    assert len(keys) == 2 + len(L.K3S_LEAF_CAS) + 2  # root and intermediate, the CAs k3s reads, service and admin
    # A key's PEM, by its full lines of base64 (its first and last lines are the same for every key).
    values = [*secrets.values(), *(line for pem in keys.values() for line in pem.splitlines()[1:-2])]
    state = project.state_file.read_text()
    ignition = [path.read_text() for path in (project.build_dir / "ignition").glob("*.ign")]
    for value in values:
        assert len(value) >= 32
        assert value not in state
        for output in [*project.outputs, *ignition]:
            assert value not in output


def test_a_secret_setting_is_encrypted_everywhere(project: PulumiProject) -> None:
    value = SECRET_VALUES["logExportTarget"]
    project.set_secret("logExportTarget", value)
    stack_file = project.stack_file.read_text()
    assert re.search(r"ephemeros:logExportTarget:\s+secure: ", stack_file)
    assert value not in stack_file

    steps = project.preview_steps()
    # Each node gains the exporter in its Ignition and the target on its stick.
    assert names(steps) == sorted([("update", f"dev-{h}-{what}") for h in HOSTS for what in ("ignition", "stick")])
    project.run("up", "--yes")
    project.run("config")
    project.run("stack", "output", "--json")
    assert "log-export.service" in (project.build_dir / "ignition/node0.ign").read_text()

    state = project.state_file.read_text()
    assert value not in state
    assert "ciphertext" in state  # the generated secrets are in state, encrypted
    for output in project.outputs:
        assert value not in output


def test_a_bad_setting_fails_at_preview_naming_the_key(project: PulumiProject) -> None:
    project.run("config", "set", "--path", "nodes[2].mac", "52:54:00:zz:00:02")
    done = project.run("preview", check=False)
    assert done.returncode != 0
    problem = "ephemeros:nodes[2].mac (node node2): '52:54:00:zz:00:02' is not a MAC address"
    output = done.stdout + done.stderr
    assert output.count(problem) == 1  # one clean block: no traceback, nothing the engine adds
    assert output.count("the stack configuration has 1 problem(s):") == 1, output
    assert "unhandled error" not in output
    assert "Traceback" not in output
    project.run("config", "set", "--path", "nodes[2].mac", "52:54:00:e0:00:02")
    project.run("preview", "--expect-no-changes")


def test_a_stick_device_is_checked_at_preview(project: PulumiProject) -> None:
    stick = project.dir / "fake-stick"  # a regular file where a device should be
    stick.write_bytes(b"\xff" * (32 * 1024 * 1024))
    project.run("config", "set", "--path", "nodes[2].stick.device", str(stick))
    project.run("config", "set", "--path", "nodes[2].stick.confirm", str(stick.parent / "other"))
    done = project.run("preview", check=False)
    assert done.returncode != 0
    assert "ephemeros:nodes[2].stick (node node2): confirm must repeat the device path" in done.stdout

    project.run("config", "set", "--path", "nodes[2].stick.confirm", str(stick))
    done = project.run("preview", check=False)
    assert done.returncode != 0
    assert "ephemeros:nodes[2].stick.device (node node2): " in done.stdout
    assert "is a regular file, not a stick" in done.stdout
    assert stick.read_bytes() == b"\xff" * (32 * 1024 * 1024)

    with loop_device(project.dir / "fixed-disk", 32 * 1024 * 1024) as device:  # a real, fixed block device
        project.run("config", "set", "--path", "nodes[2].stick.device", str(device))
        project.run("config", "set", "--path", "nodes[2].stick.confirm", str(device))
        done = project.run("preview", check=False)
        assert done.returncode != 0
        assert f"{device} is neither removable nor attached through USB" in done.stdout
        assert device.read_bytes() == b"\xff" * (32 * 1024 * 1024)

    project.run("config", "rm", "--path", "nodes[2].stick")
    project.run("preview", "--expect-no-changes")


def test_a_rotated_node_password_rebuilds_only_that_stick(project: PulumiProject) -> None:
    project.run("config", "set", "--path", "rotate.nodePasswords.node2", "1")
    assert names(project.preview_steps()) == [
        ("replace", "dev-secrets-node2-node-password"),
        ("update", "dev-node2-stick"),
    ]
    diff = project.run("preview", "--diff").stdout
    files = diff[diff.index("secretFiles") :]
    assert re.search(r"~ node-password\s*: \[secret\] => \[unknown\]", files), files  # which file, not its content
    assert "~ k3s.env" not in diff  # the files that do not change are shown unchanged
    project.run("up", "--yes")
    project.run("preview", "--expect-no-changes")


def test_refresh_notices_a_file_deleted_by_hand(project: PulumiProject) -> None:
    project.run("refresh", "--yes", "--expect-no-changes")
    (project.build_dir / "ignition/node2.ign").unlink()
    project.run("refresh", "--yes")
    assert names(project.preview_steps()) == [("create", "dev-node2-ignition")]
    project.run("up", "--yes")
    assert (project.build_dir / "ignition/node2.ign").is_file()


def test_refresh_notices_a_stick_image_changed_by_hand(project: PulumiProject) -> None:
    image = project.build_dir / "sticks/node1.img"
    built = image.read_bytes()
    with image.open("r+b") as tampered:
        tampered.seek(2 * 1024 * 1024)
        tampered.write(b"not what pulumi built")
    project.run("refresh", "--yes")
    assert names(project.preview_steps()) == [("update", "dev-node1-stick")]
    project.run("up", "--yes")
    assert image.read_bytes() == built


def test_destroy_leaves_no_resources_and_no_artifacts(project: PulumiProject) -> None:
    project.run("destroy", "--yes")
    assert project.resources() == []
    assert [p for p in project.build_dir.rglob("*") if p.is_file()] == []
