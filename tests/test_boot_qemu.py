"""The dev stack's sticks, built by `pulumi up` under the real engine, boot in QEMU under UEFI and BIOS.

A loopback HTTP server serves what `pulumi up` made to be served (the nodes' boot scripts, at ignitionBaseUrl), and
stands in for flatcar.baseUrl with Debian's kernel and a busybox init (see harness/boot_assets.py) that reports the
kernel command line and the secrets partition's files.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from base import node_layout as L
from base import stick_layout as B
from bootmedia.boot_script import served_boot_script, stick_boot_script, syslinux_config
from bootmedia.bootloader import check_bootloader
from bootmedia.image import ImageSpec, build_image
from harness import qemu
from harness.boot_assets import MARKER, boot_assets
from harness.generated_secrets import GeneratedSecrets, secret_files
from harness.http_server import serve_directory
from harness.pulumi_project import PulumiProject
from harness.stack import REPO, stack_settings, to_raw
from pki.k3s import secure_token
from settings import load_settings
from settings.model import Bootloader

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.engine]
VERSION = "4593.2.5"
HOSTS = [n["hostname"] for n in stack_settings("dev")["nodes"]]


@dataclass(frozen=True)
class DevSticks:
    nodes: dict[str, Any]  # the `nodes` stack output
    expected_files: dict[str, dict[str, str]]  # hostname -> file name -> sha256 of its content


def flatcar_mirror(root: Path, with_kernel: bool) -> Path:
    """`root` laid out as flatcar.baseUrl (<root>/<version>/...); `root/ignition` is where ignitionBaseUrl points."""
    release = root / VERSION
    release.mkdir(parents=True)
    assets = boot_assets()
    if with_kernel:
        shutil.copyfile(assets.kernel, release / B.FLATCAR_KERNEL)
    shutil.copyfile(assets.initrd, release / B.FLATCAR_INITRD)
    return root


@dataclass(frozen=True)
class Mirror:
    root: Path
    url: str  # as the guests reach it


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    qemu.require_qemu()
    root = flatcar_mirror(tmp_path_factory.mktemp("flatcar"), with_kernel=True)
    with serve_directory(root) as (url, _):
        yield Mirror(root, url.replace("127.0.0.1", qemu.HOST_FROM_GUEST))


@pytest.fixture(scope="module")
def dev_sticks(tmp_path_factory: pytest.TempPathFactory, mirror: Mirror) -> Iterator[DevSticks]:
    settings = stack_settings("dev")
    settings["flatcar"] = {"version": VERSION, "baseUrl": mirror.url}
    settings["ignitionBaseUrl"] = f"{mirror.url}/ignition"
    project = PulumiProject(tmp_path_factory.mktemp("engine") / "ephemeros", "boottest")
    (mirror.root / "ignition").symlink_to(project.build_dir / "ignition")  # served as `make serve` would
    project.init(settings)
    project.run("up", "--yes")
    nodes = project.stack_output("nodes")
    secrets = project.generated_secrets()
    sticks = project.stick_secret_files()
    loaded = load_settings(to_raw(settings), set())
    # The tokens on the sticks are k3s's secure form, with the hash of the server CA that the servers carry.
    server_ca = sticks["dev-node0-stick"][L.pki_file("server", "crt")]
    expected = {}
    for node in loaded.settings.nodes:
        generated = GeneratedSecrets(
            secure_token(server_ca, "server", secrets["dev-secrets-server-token"]),
            secrets["dev-secrets-agent-token"],
            secrets[f"dev-secrets-{node.hostname}-node-password"],
            agent_join_token=secure_token(server_ca, "node", secrets["dev-secrets-agent-token"]),
        )
        files = secret_files(loaded.settings, node, loaded.credentials, generated)
        if node.role == "server":
            pki = {name: sticks[f"dev-{node.hostname}-stick"][name] for name in L.pki_files()}
            assert pki == {name: sticks["dev-node0-stick"][name] for name in L.pki_files()}  # one PKI
            files |= pki
        assert files == sticks[f"dev-{node.hostname}-stick"]
        expected[node.hostname] = {
            name: hashlib.sha256(content.encode()).hexdigest() for name, content in files.items()
        }
    yield DevSticks(nodes, expected)
    project.run("destroy", "--yes", check=False)


def reports(serial: str) -> list[str]:
    return [line.split(MARKER, 1)[1].strip() for line in serial.splitlines() if MARKER in line]


@pytest.mark.parametrize("firmware", qemu.FIRMWARES)
@pytest.mark.parametrize("hostname", HOSTS)
def test_each_dev_stick_boots_and_hands_over_its_secrets(
    hostname: str, firmware: str, dev_sticks: DevSticks, tmp_path: Path
) -> None:
    node = dev_sticks.nodes[hostname]
    image = Path(node["stickImage"])
    assert image.stat().st_size <= 64 * 1024 * 1024
    result = qemu.boot(image, firmware, tmp_path, until=lambda text: f"{MARKER} done" in text)
    assert result.reached, (
        f"{hostname} did not reach the test init under {firmware}:\n{result.serial[-3000:]}{result.qemu_errors}"
    )

    assert f"ephemeros: fetching the boot script {node['bootScriptUrl']}" in result.serial  # the stick's script
    assert "ephemeros: downloading Flatcar" in result.serial  # the served one
    lines = reports(result.serial)
    cmdline = lines[0].removeprefix("cmdline ").split()
    assert "flatcar.first_boot=1" in cmdline
    assert f"ignition.config.url={node['ignitionUrl']}" in cmdline
    assert f"initrd={B.FLATCAR_INITRD}" in cmdline
    assert "console=ttyS0,115200n8" in cmdline
    assert f"{L.BOOT_DIGEST_ARG}={node['bootDigest']}" in cmdline  # the node knows which script it booted
    assert "root 700 0:0" in lines
    files = {}
    for line in lines:
        match = re.fullmatch(r"file (\S+) (\d+) (\d+:\d+) ?([0-9a-f]*)", line)
        if match and match[1] != "lost+found":
            files[match[1]] = (match[2], match[3], match[4])
    assert files == {name: ("600", "0:0", digest) for name, digest in dev_sticks.expected_files[hostname].items()}


@pytest.mark.parametrize(("firmware", "missing"), [("uefi", "kernel"), ("bios", "boot script")])
def test_a_missing_file_gives_the_retry_message_not_a_hang(
    firmware: str, missing: str, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """Without the kernel, the served script says which file it could not download and hands back to the stick's
    loop, which fetches the script anew; without the script, the stick's loop says so. Neither hangs."""
    qemu.require_qemu()
    root = flatcar_mirror(tmp_path_factory.mktemp("no-kernel"), with_kernel=False)
    with serve_directory(root) as (url, requests):
        url = url.replace("127.0.0.1", qemu.HOST_FROM_GUEST)
        settings = stack_settings("dev")
        settings["flatcar"] = {"version": VERSION, "baseUrl": url}
        settings["ignitionBaseUrl"] = url
        loaded = load_settings(to_raw(settings), set())
        node = loaded.settings.nodes[1]
        if missing == "kernel":
            (root / L.boot_script_name(node.hostname)).write_text(served_boot_script(loaded.settings, node))
        spec = ImageSpec(
            identity="dev/node1",
            boot_script=stick_boot_script(loaded.settings, node),
            syslinux_config=syslinux_config(),
            boot_files=check_bootloader(Bootloader(), REPO),
            secret_files={"k3s.env": 'K3S_TOKEN="x"\n'},
        )
        image = tmp_path / "node1.img"
        build_image(image, spec)
        retry = f"could not boot from {url}/{L.boot_script_name(node.hostname)}"

        result = qemu.boot(image, firmware, tmp_path / "run", until=lambda text: text.count(retry) >= 2)
    assert result.reached, f"no retry under {firmware}:\n{result.serial[-3000:]}{result.qemu_errors}"
    assert "retrying in 10 seconds" in result.serial
    assert result.serial.count("configuring the network") >= 2  # it went round the loop
    assert MARKER not in result.serial
    assert sum(path == f"/{L.boot_script_name(node.hostname)}" for path in requests) >= 2  # fetched each round
    if missing == "kernel":
        assert result.serial.count(f"could not download {url}/{VERSION}/{B.FLATCAR_KERNEL}") >= 2
        assert sum(f"/{VERSION}/{B.FLATCAR_KERNEL}" in path for path in requests) >= 2
