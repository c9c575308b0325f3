"""The Debian VM harness: a stock Debian 12 VM runs a small user data for real, from the local apt repository.

The user data installs jq (with its libraries, from the local repository), writes a file, uses jq on it, and
starts a web server on a TCP port; the test reads it from the VM's network namespace, by a name given in `hosts`.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from harness import apt_repo
from harness.debian_vm import (
    DEFAULT_ADDRESS,
    RECIPE,
    REPO_URL,
    REPORT_BEGIN,
    REPORT_END,
    CloudInitResult,
    DebianVM,
    debian_vm,
    image_dir,
    parse_report,
)

PORT = 7000
NAME = "probe.ephemeros.test"
USER_DATA = """#cloud-config
packages:
  - jq
write_files:
  - path: /srv/probe/hello.txt
    content: "hello from cloud-init\\n"
runcmd:
  - [sh, -c, "dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n' jq libjq1 > /srv/probe/packages.txt"]
  - [sh, -c, "jq -n --rawfile hello /srv/probe/hello.txt '{hello: $hello}' > /srv/probe/hello.json"]
  - [systemd-run, --unit=probe, python3, -m, http.server, "7000", --directory, /srv/probe]
"""
pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]

GET = """import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
sys.stdout.write(opener.open(sys.argv[1], timeout=10).read().decode())
"""


@pytest.fixture(scope="module")
def vm() -> Iterator[DebianVM]:
    with debian_vm(USER_DATA, packages=["jq"], hosts={NAME: DEFAULT_ADDRESS}) as machine:
        yield machine


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a cold cache builds the image first
def test_user_data_runs_with_packages_from_the_local_repo(vm: DebianVM) -> None:
    result = vm.wait_for_cloud_init(timeout=1200)
    assert result.ok, result.explain()
    assert (result.status, result.errors, result.schema_valid) == ("done", (), True)
    assert {"jq", "libjq1", "libonig5"} <= result.packages.keys()
    assert re.search(r'"GET /debian(-security)?/pool/\S+/jq_\S+_amd64\.deb HTTP/1\.1" 200', vm.repo.log.read_text())

    vm.wait_for_port(PORT, timeout=120)
    url = f"http://{NAME}:{PORT}"
    packages = vm.run([sys.executable, "-c", GET, f"{url}/packages.txt"], check=True).stdout
    assert packages.splitlines() == ["jq ii ", "libjq1 ii "]
    hello = vm.run([sys.executable, "-c", GET, f"{url}/hello.json"], check=True).stdout
    assert json.loads(hello) == {"hello": "hello from cloud-init\n"}
    assert vm.run(["getent", "hosts", NAME], check=True).stdout.split()[0] == vm.address == DEFAULT_ADDRESS


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
