"""Coordinated reboots, image registries and snippets under the real Pulumi engine (file backend, passphrase
secrets), as a user's day: turn them on with `pulumi config set` and `pulumi up`; a registry's credentials land on
the sticks only, encrypted in the stack file and state; a new mirror or snippet changes the served configs and no
stick (the nodes pick it up at their next reboot, which their update check asks kured for); new credentials change
the sticks and no config; a snippet that writes what the program writes fails at preview, naming it.

One scenario (see tests/conftest.py): the steps run in order against one stack made from the dev stack's settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from base import node_layout as L
from harness.pulumi_project import PulumiProject
from harness.stack import stack_settings
from harness.stick import secret_file

pytestmark = [pytest.mark.engine, pytest.mark.scenario]

HOSTS = [n["hostname"] for n in stack_settings("dev")["nodes"]]
PASSWORD = "mirror-Pull-5ecret-41c2"
NEW_PASSWORD = "mirror-Pull-5ecret-77d9"
MOTD = "storage:\n  files:\n    - path: /etc/motd\n      mode: 420\n      contents: {source: 'data:,lab%0A'}\n"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulumiProject]:
    project = PulumiProject(tmp_path_factory.mktemp("features") / "ephemeros", "features")
    project.init(stack_settings("dev"))
    yield project
    project.run("destroy", "--yes", check=False)


def ops(project: PulumiProject) -> list[tuple[str, str]]:
    return sorted((str(s["op"]), str(s["urn"]).split("::")[-1]) for s in project.preview_steps())


def ignition(project: PulumiProject, hostname: str) -> str:
    return (project.build_dir / "ignition" / L.config_name(hostname)).read_text()


def stick_file(project: PulumiProject, hostname: str, name: str) -> str | None:
    return secret_file(Path(project.stack_output("nodes")[hostname]["stickImage"]), name)


def edit(project: PulumiProject, change: dict[str, Any]) -> None:
    settings = project.config_document()
    settings.update(change)
    project.write_config_document(settings)


def test_the_dev_stack_is_up(project: PulumiProject) -> None:
    project.run("up", "--yes")
    assert L.KURED_MANIFEST not in ignition(project, "node0")  # off until set


def test_updates_registries_and_snippets_are_turned_on(project: PulumiProject) -> None:
    edit(
        project,
        {
            "updates": {"window": {"days": ["sat", "sun"], "start": "02:00", "end": "05:00"}},
            "registries": {
                "embeddedMirror": True,
                "mirrors": [{"registry": "docker.io", "endpoints": ["https://mirror.lan:5000"]}],
            },
            "snippets": {"all": [MOTD]},
        },
    )
    project.run("config", "set", "--secret", "--path", 'registryAuth["mirror.lan:5000"].username', stdin="puller")
    project.run("config", "set", "--secret", "--path", 'registryAuth["mirror.lan:5000"].password', stdin=PASSWORD)
    stack_file = project.stack_file.read_text()
    assert PASSWORD not in stack_file
    (line,) = [line for line in stack_file.splitlines() if "ephemeros:registryAuth:" in line]
    assert line.count("secure: ") == 2  # each value encrypted
    assert ops(project) == sorted(("update", f"dev-{h}-{what}") for h in HOSTS for what in ("ignition", "stick"))
    project.run("up", "--yes")

    for hostname in HOSTS:
        public = ignition(project, hostname)
        assert (L.KURED_MANIFEST in public) == (hostname == "node0")  # the dev stack's one server
        assert L.UPDATE_CHECK_TIMER in public
        assert L.REGISTRIES_UNIT in public
        assert '"merge":[{"source":"data:,' in public  # the snippet, merged by Ignition
        assert "puller" not in public
        assert PASSWORD not in public
        auth = stick_file(project, hostname, L.REGISTRIES_AUTH)
        assert auth is not None
        assert yaml.safe_load(auth) == {"mirror.lan:5000": {"auth": {"username": "puller", "password": PASSWORD}}}
    state = project.state_file.read_text()
    assert PASSWORD not in state
    for output in project.outputs:
        assert PASSWORD not in output


def test_a_new_mirror_and_a_changed_snippet_change_no_stick(project: PulumiProject) -> None:
    before = project.stack_output("nodes")
    settings = project.config_document()
    settings["registries"]["mirrors"].append({"registry": "ghcr.io", "endpoints": ["https://mirror.lan:5000"]})
    settings["snippets"] = {"all": [MOTD.replace("lab", "lab2")]}
    project.write_config_document(settings)
    assert ops(project) == [("update", f"dev-{h}-ignition") for h in HOSTS]
    project.run("up", "--yes")
    after = project.stack_output("nodes")
    for hostname in HOSTS:
        assert after[hostname]["stickSha256"] == before[hostname]["stickSha256"]
        assert after[hostname]["configDigest"] != before[hostname]["configDigest"]  # what the update check sees
        config = json.loads(ignition(project, hostname))
        files = {f["path"] for f in config["storage"]["files"]}
        assert L.REGISTRIES_PUBLIC in files
        assert "ghcr.io" in ignition(project, hostname)
    project.run("preview", "--expect-no-changes")


def test_new_registry_credentials_change_the_sticks_and_no_config(project: PulumiProject) -> None:
    before = project.stack_output("nodes")
    project.run("config", "set", "--secret", "--path", 'registryAuth["mirror.lan:5000"].password', stdin=NEW_PASSWORD)
    assert ops(project) == [("update", f"dev-{h}-stick") for h in HOSTS]
    project.run("up", "--yes")
    after = project.stack_output("nodes")
    for hostname in HOSTS:
        assert after[hostname]["configDigest"] == before[hostname]["configDigest"]
        assert NEW_PASSWORD in (stick_file(project, hostname, L.REGISTRIES_AUTH) or "")
    assert NEW_PASSWORD not in project.state_file.read_text()


def test_a_snippet_that_writes_what_the_program_writes_fails_at_preview(project: PulumiProject) -> None:
    settings = project.config_document()
    settings["snippets"] = {"server": ["storage:\n  files:\n    - path: /etc/rancher/k3s/config.yaml\n"]}
    project.write_config_document(settings)
    done = project.run("preview", check=False)
    assert done.returncode != 0
    assert (
        "ephemeros:snippets.server[0]: writes /etc/rancher/k3s/config.yaml, which ephemeros owns on node0"
        in done.stdout + done.stderr
    )
