"""The Debian VM harness: what keys its image and apt repository caches, and how it reads cloud-init's report.

The VM itself boots once, in tests/test_datastore_vm.py, with the datastore's user data: its first test checks
what the harness promises (cloud-init done with a valid schema, the packages from the local repository, the VM's
name resolving to its address), so that no second VM boots under TCG for the harness alone.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest

from harness import apt_repo
from harness.debian_vm import (
    RECIPE,
    REPO_URL,
    REPORT_BEGIN,
    REPORT_END,
    CloudInitResult,
    image_dir,
    parse_report,
)


@pytest.mark.parametrize(
    "change",
    [
        {"suite": "trixie"},
        {"debootstrap": ("--variant=minbase",)},
        {"packages": (*RECIPE.packages, "openssh-server")},
        {"files": ((*RECIPE.files[0][:2], RECIPE.files[0][2] + "# changed\n"), *RECIPE.files[1:])},
        {"files": ((RECIPE.files[0][0], 0o600, RECIPE.files[0][2]), *RECIPE.files[1:])},
        {"install_script": RECIPE.install_script + "true\n"},
        {"finalize_script": RECIPE.finalize_script + "true\n"},
        {"disk_size": "8G"},
    ],
)
def test_image_cache_key_follows_the_recipe(change: dict[str, Any]) -> None:
    changed = replace(RECIPE, **change)
    assert changed.key != RECIPE.key
    assert image_dir(changed) != image_dir(RECIPE)
    assert replace(RECIPE).key == RECIPE.key


def test_repo_cache_key_follows_packages_image_and_index_dates() -> None:
    dates = {"bookworm": "Sat, 11 Jul 2026 10:16:37 UTC"}
    key = apt_repo.repo_key(["tree", "jq"], RECIPE.key, dates)
    assert apt_repo.repo_key(["jq", "tree", "jq"], RECIPE.key, dates) == key
    assert apt_repo.repo_key(["tree"], RECIPE.key, dates) != key
    assert apt_repo.repo_key(["tree", "jq"], "0" * 16, dates) != key
    assert apt_repo.repo_key(["tree", "jq"], RECIPE.key, {"bookworm": "Sun, 12 Jul 2026 10:16:37 UTC"}) != key


def test_image_sources_name_the_local_repository() -> None:
    sources = dict((path, content) for path, _, content in RECIPE.files)["/etc/apt/sources.list"]
    assert sources.splitlines() == [
        f"deb {REPO_URL}/debian bookworm main",
        f"deb {REPO_URL}/debian bookworm-updates main",
        f"deb {REPO_URL}/debian-security bookworm-security main",
    ]


def test_report_parsing_and_apt_failures_come_first() -> None:
    report = {"status": "status: error\n", "schema": {"valid": True, "output": ""}, "result": "{}", "packages": ""}
    payload = base64.b64encode(json.dumps(report).encode()).decode()
    serial = f"noise\r\n{REPORT_BEGIN}\r\n{payload[:10]}\r\n{payload[10:]}\r\n{REPORT_END}\r\n"
    assert parse_report(serial) == report
    assert parse_report(serial.split(REPORT_END)[0]) is None
    failed = CloudInitResult(
        status="error",
        errors=("('package-update-upgrade-install', RuntimeError('Failed to install packages'))",),
        detail="status: error",
        schema_valid=True,
        schema="Valid cloud-config: system userdata",
        log_problems=(),
        output="E: Unable to locate package nosuch\n",
        packages={},
        not_installed=("nosuch",),
        missing_from_repo=(),
        serial="",
        seconds=1,
    )
    assert not failed.ok
    assert failed.apt_failed
    explained = failed.explain().splitlines()
    assert explained[1].startswith("apt failed in the VM")
    assert "E: Unable to locate package nosuch" in failed.explain()
