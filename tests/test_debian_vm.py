"""The Debian VM harness: what keys its image and apt repository caches, and how it reads cloud-init's report.

The VM itself boots once, in tests/test_datastore_vm.py, with the datastore's user data: its first test checks
what the harness promises (cloud-init done with a valid schema, the packages from the local repository, the VM's
name resolving to its address), so that no second VM boots under TCG for the harness alone.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
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
    signed = f"[signed-by={apt_repo.MIRROR_KEY_IN_VM}]"
    assert sources.splitlines() == [
        f"deb {signed} {REPO_URL}/debian bookworm main",
        f"deb {signed} {REPO_URL}/debian bookworm-updates main",
        f"deb {signed} {REPO_URL}/debian-security bookworm-security main",
    ]


STANZA = """Package: {name}
Version: {version}
Architecture: amd64
Filename: pool/main/{name[0]}/{name}/{name}_{version}_amd64.deb
Size: 1234
SHA256: {digest}
Description: a package
"""


def _source_apt(work: Path, status: Path) -> apt_repo._Apt:
    """apt state as after `apt-get update` against Debian: each suite's InRelease and index in its lists."""
    source = apt_repo._Apt(work, {}, status)
    for suite in apt_repo.suites("bookworm"):
        prefix = source.work / "lists" / f"deb.example_debian_dists_{suite}"
        Path(f"{prefix}_InRelease").write_text(
            f"Origin: Debian\nLabel: Debian\nSuite: {suite}\nCodename: {suite}\nDate: Sat, 11 Jul 2026 10:16:37 UTC\n"
        )
        stanzas = [STANZA.format(name=name, version=f"1.0-{suite}", digest="0" * 64) for name in ("wanted", "other")]
        Path(f"{prefix}_main_binary-amd64_Packages").write_text("\n".join(stanzas))
    return source


def _reader(work: Path, status: Path, tree: Path, public: Path) -> apt_repo._Apt:
    """apt on this machine with the VM's sources (the tree as a file: URL) and the mirror's key at `public`."""
    reader = apt_repo._Apt(work, {}, status)
    sources = apt_repo.sources_list(f"file://{tree}", "bookworm").replace(apt_repo.MIRROR_KEY_IN_VM, str(public))
    (reader.work / "sources.list").write_text(sources)
    return reader


def test_the_repository_index_holds_what_it_serves_and_the_vms_apt_verifies_it(tmp_path: Path) -> None:
    """The trimmed index, read by apt on this machine configured as the VM's: verified with the mirror's public
    key, it offers what the tree holds and nothing else; signed with another key, apt refuses it."""
    status = tmp_path / "status"
    status.write_text("")
    key, public = tmp_path / "signing.asc", tmp_path / "public.asc"
    apt_repo.new_mirror_key(key, public)
    assert key.stat().st_mode & 0o777 == 0o600
    held = ["debian/pool/main/w/wanted/wanted_1.0-bookworm_amd64.deb"]
    tree = tmp_path / "tree"
    apt_repo._write_indexes(_source_apt(tmp_path / "source", status), "bookworm", tree, held, key)

    reader = _reader(tmp_path / "reader", status, tree, public)
    reader.run("update")
    policy = subprocess.run(
        ["apt-cache", "policy", "wanted", "other"], env=reader.env, capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r"^wanted:\n\s+Installed: \(none\)\n\s+Candidate: 1.0-bookworm$", policy, re.M), policy
    assert "other:" not in policy

    other_key = tmp_path / "other.asc"
    apt_repo.new_mirror_key(other_key, tmp_path / "other-public.asc")
    shutil.rmtree(tree)
    apt_repo._write_indexes(_source_apt(tmp_path / "source2", status), "bookworm", tree, held, other_key)
    with pytest.raises(RuntimeError, match="NO_PUBKEY"):
        _reader(tmp_path / "reader2", status, tree, public).run("update")


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
