"""A new user's stacks, through the Makefile in a fresh clone under the real engine (file backend): the first
`make up` changes no file git tracks, a stack without settings says what to do and leaves nothing behind, and
`make new-stack` starts a stack from another's settings with a salt of its own.

One scenario (see tests/conftest.py): the steps share the clone and its dev stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from harness.processes import log_tail
from harness.project_clone import ProjectClone
from harness.stack import SECRET_VALUES, stack_settings

pytestmark = [pytest.mark.engine, pytest.mark.scenario]

LOG_TARGET = SECRET_VALUES["logExportTarget"]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProjectClone]:
    clone = ProjectClone(tmp_path_factory.mktemp("new-stack") / "ephemeros")
    yield clone
    for stack in ("prod", "dev"):
        clone.pulumi("destroy", "--yes", "--stack", stack)


def stack_file(clone: ProjectClone, stack: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((clone.dir / f"Pulumi.{stack}.yaml").read_text())
    return document


def test_the_first_make_up_of_a_fresh_clone_changes_no_tracked_file(clone: ProjectClone) -> None:
    done = clone.make("up")
    assert done.returncode == 0, log_tail(done.stdout + done.stderr)
    assert clone.git_status() == ""
    dev = stack_file(clone, "dev")
    assert dev["encryptionsalt"].startswith("v1:")  # this clone's salt, in a file git ignores
    assert {key.split(":", 1)[1]: value for key, value in dev["config"].items()} == {
        key: value for key, value in stack_settings("dev").items() if f"ephemeros:{key}" in dev["config"]
    }
    assert (clone.dir / ".pulumi/stacks/ephemeros/dev.json").is_file()  # the default: a file backend in the clone


def test_a_stack_without_settings_says_what_to_do_and_leaves_nothing(clone: ProjectClone) -> None:
    done = clone.make("preview", env=clone.env | {"STACK": "prod"})
    assert done.returncode != 0
    assert "Pulumi.prod.yaml does not exist, so the prod stack has no settings" in done.stderr
    assert "make new-stack NEW=prod FROM=dev" in done.stderr
    assert not (clone.dir / "Pulumi.prod.yaml").exists()
    assert '"prod"' not in clone.pulumi("stack", "ls", "--json").stdout
    assert clone.git_status() == ""


def test_a_new_stack_gets_the_settings_without_the_salt(clone: ProjectClone) -> None:
    done = clone.pulumi("config", "set", "--secret", "logExportTarget", "--stack", "dev", stdin=LOG_TARGET)
    assert done.returncode == 0, done.stderr
    done = clone.make("new-stack", "NEW=prod", "FROM=dev")
    assert done.returncode == 0, log_tail(done.stdout + done.stderr)
    dev, prod = stack_file(clone, "dev"), stack_file(clone, "prod")
    assert prod["encryptionsalt"].startswith("v1:")
    assert prod["encryptionsalt"] != dev["encryptionsalt"]
    secret = "ephemeros:logExportTarget"
    assert {k: v for k, v in prod["config"].items() if k != secret} == {
        k: v for k, v in dev["config"].items() if k != secret
    }
    assert prod["config"][secret]["secure"] != dev["config"][secret]["secure"]  # encrypted anew, for prod
    assert LOG_TARGET not in (clone.dir / "Pulumi.prod.yaml").read_text()
    shown = clone.pulumi("config", "get", "logExportTarget", "--stack", "prod")
    assert shown.stdout.strip() == LOG_TARGET, shown.stderr
    assert clone.git_status() == "?? Pulumi.prod.yaml\n"  # the new stack's file, to commit with its salt

    done = clone.make("preview", env=clone.env | {"STACK": "prod"})
    assert done.returncode == 0, log_tail(done.stdout + done.stderr)


def test_a_new_stack_is_not_made_over_an_existing_one(clone: ProjectClone) -> None:
    before = (clone.dir / "Pulumi.prod.yaml").read_text()
    done = clone.make("new-stack", "NEW=prod")
    assert done.returncode != 0
    assert "Pulumi.prod.yaml exists already" in done.stderr
    assert (clone.dir / "Pulumi.prod.yaml").read_text() == before
    done = clone.make("new-stack")
    assert done.returncode != 0
    assert "name the new stack: make new-stack NEW=prod [FROM=dev]" in done.stderr
