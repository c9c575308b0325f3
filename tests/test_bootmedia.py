"""Stick images: boot script, secrets partition, boot-program checks, and the image file itself."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
import sys
import typing
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from base import node_layout as L
from base import stick_layout as B
from base.envfile import env_file
from bootmedia.boot_script import boot_digest, served_boot_script, stick_boot_script, syslinux_config
from bootmedia.bootloader import BootFiles, BootloaderError, check_bootloader, check_ipxe_efi, check_ipxe_lkrn
from bootmedia.image import ImageError, ImageSpec, build_image
from bootmedia.secret_files import Source
from harness.generated_secrets import GeneratedSecrets, secret_files
from harness.stack import REPO, SECRET_VALUES, edited, full_settings, node_named, secret_keys, stack_settings, to_raw
from harness.stick import extract
from settings import LoadedSettings, load_settings
from settings.model import Bootloader

GENERATED = GeneratedSecrets("server-token-XYZ", "agent-token-XYZ", "node-password-XYZ", "https://hc.test/ping/abc")


def load(doc: dict[str, Any], secret: Collection[str] = ()) -> LoadedSettings:
    return load_settings(to_raw(doc), secret_keys(set(secret)))


@pytest.fixture(scope="module")
def boot_files() -> BootFiles:
    return check_bootloader(Bootloader(), REPO)


def spec_for(
    loaded: LoadedSettings, hostname: str, boot_files: BootFiles, generated: GeneratedSecrets = GENERATED
) -> ImageSpec:
    node = node_named(loaded.settings, hostname)
    return ImageSpec(
        identity=f"{loaded.settings.cluster_name}/{hostname}",
        boot_script=stick_boot_script(loaded.settings, node),
        syslinux_config=syslinux_config(),
        boot_files=boot_files,
        secret_files=secret_files(loaded.settings, node, loaded.credentials, generated),
    )


# --- the boot script ---------------------------------------------------------------------------------------


def test_served_boot_script_boots_the_pinned_flatcar_with_the_nodes_ignition() -> None:
    doc = stack_settings("dev")
    doc["nodes"][1]["kernelArgs"] = ["flatcar.autologin"]
    settings = load(doc).settings
    script = served_boot_script(settings, node_named(settings, "node1"))
    assert script.startswith("#!ipxe\n")
    assert "set base-url https://stable.release.flatcar-linux.net/amd64-usr/4593.2.5\n" in script
    kernel = next(line for line in script.splitlines() if line.startswith("kernel "))
    assert kernel.split()[1] == "${base-url}/flatcar_production_pxe.vmlinuz"
    args = kernel.split()[2:-3]
    assert args[:-1] == [
        "initrd=flatcar_production_pxe_image.cpio.gz",
        "flatcar.first_boot=1",
        "ignition.config.url=http://10.0.2.2:8080/node1.ign",
        "console=ttyS0,115200n8",
        "console=tty0",
        "flatcar.autologin",
    ]
    assert args[-1] == f"{L.BOOT_DIGEST_ARG}={boot_digest(script)}"
    assert "initrd ${base-url}/flatcar_production_pxe_image.cpio.gz || goto no_initrd" in script


def test_the_boot_digest_names_the_served_script() -> None:
    """The digest a node finds in its kernel command line tells one served script from another, and is what the
    program computes from the script's text (as a node's update check does)."""
    settings = load(stack_settings("dev")).settings
    node = settings.nodes[0]
    script = served_boot_script(settings, node)
    digest = boot_digest(script)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert f" {L.BOOT_DIGEST_ARG}={digest} " in script
    blank = script.replace(digest, "")
    assert digest == hashlib.sha256(blank.encode()).hexdigest()
    assert boot_digest(blank) == digest  # computed the same with or without its own value
    doc = stack_settings("dev") | {"flatcar": {"version": "4593.2.6"}}
    other = load(doc).settings
    assert boot_digest(served_boot_script(other, other.nodes[0])) != digest
    with pytest.raises(ValueError, match="not a served boot script"):
        boot_digest(stick_boot_script(settings, node))


def test_a_failed_download_says_which_file_and_hands_back_to_the_stick() -> None:
    settings = load(stack_settings("dev")).settings
    script = served_boot_script(settings, settings.nodes[0])
    for label, file in ((":no_kernel", B.FLATCAR_KERNEL), (":no_initrd", B.FLATCAR_INITRD)):
        block = script.split(label, 1)[1].split("\n\n", 1)[0]
        assert f"could not download ${{base-url}}/{file}" in block
        assert block.rstrip().endswith("exit 1")  # the stick's loop retries, fetching the script anew


def test_the_stick_only_chains_the_served_script_and_retries_forever() -> None:
    doc = stack_settings("dev")
    settings = load(doc).settings
    script = stick_boot_script(settings, settings.nodes[0])
    assert "set boot-script http://10.0.2.2:8080/node0.ipxe\n" in script
    assert "chain ${boot-script} || goto no_boot" in script
    assert "dhcp || goto no_network" in script
    for label in (":no_network", ":no_boot"):
        block = script.split(label, 1)[1].split("\n\n", 1)[0]
        assert "sleep 10" in block
        assert block.rstrip().endswith("goto network")
    assert "could not boot from ${boot-script}" in script
    # Nothing that a served setting holds: a new Flatcar, mirror or kernel argument keeps the stick as it is.
    changed = edited(doc) | {
        "flatcar": {"version": "current", "baseUrl": "http://mirror.lan/fc", "kernelArgs": ["quiet"]}
    }
    changed["nodes"][0]["kernelArgs"] = ["nomodeset"]
    other = load(changed).settings
    assert stick_boot_script(other, other.nodes[0]) == script
    assert served_boot_script(other, other.nodes[0]) != served_boot_script(settings, settings.nodes[0])


def test_current_flatcar_when_asked() -> None:
    doc = stack_settings("dev") | {"flatcar": {"version": "current", "baseUrl": "http://mirror.lan/flatcar/"}}
    settings = load(doc).settings
    assert "set base-url http://mirror.lan/flatcar/current\n" in served_boot_script(settings, settings.nodes[0])


def test_syslinux_runs_ipxe_with_the_script_as_initrd() -> None:
    config = syslinux_config()
    assert f"KERNEL /{B.BIOS_IPXE}" in config
    assert f"INITRD /{B.BOOT_SCRIPT}" in config
    assert "TIMEOUT 0" in config


# --- the secrets partition ---------------------------------------------------------------------------------


def test_server_gets_both_tokens_and_the_datastore_agent_only_its_token() -> None:
    doc, secret = full_settings()
    loaded = load(doc, secret)
    server = secret_files(loaded.settings, node_named(loaded.settings, "node0"), loaded.credentials, GENERATED)
    agent = secret_files(loaded.settings, node_named(loaded.settings, "node1"), loaded.credentials, GENERATED)
    assert server[L.K3S_ENV] == 'K3S_TOKEN="server-token-XYZ"\nK3S_AGENT_TOKEN="agent-token-XYZ"\n'
    assert agent[L.K3S_ENV] == 'K3S_TOKEN="agent-token-XYZ"\n'
    assert server[L.DATASTORE_ENV] == f'K3S_DATASTORE_ENDPOINT="{SECRET_VALUES["datastoreEndpoint"]}"\n'
    assert L.DATASTORE_ENV not in agent
    for files in (server, agent):
        assert files[L.NODE_PASSWORD] == "node-password-XYZ\n"
        assert files[L.HEARTBEAT_ENV] == 'HEARTBEAT_URL="https://hc.test/ping/abc"\n'
        assert files[L.LOG_EXPORT_ENV] == 'LOGEXPORT_HOST="logs-secret-7c6b.example.net"\nLOGEXPORT_PORT="39213"\n'
        assert files[L.DDNS_ENV] == f'NAMECHEAP_DDNS_PASSWORD="{SECRET_VALUES["namecheapDdnsPassword"]}"\n'
    assert agent[L.NODE_IDENTITY] == 'NODE_NAME="node1"\nCLUSTER_NAME="lab"\n'


def test_the_stand_in_secrets_are_exactly_the_ones_the_program_makes() -> None:
    """The harness's GeneratedSecrets stand for what Pulumi makes: one field per Source, no more, no less."""
    assert {f.name for f in dataclasses.fields(GeneratedSecrets)} == set(typing.get_args(Source))


def test_a_plain_node_gets_only_what_it_needs() -> None:
    loaded = load(stack_settings("dev"))
    files = secret_files(loaded.settings, node_named(loaded.settings, "node1"), loaded.credentials, GENERATED)
    assert sorted(files) == sorted([L.K3S_ENV, L.NODE_PASSWORD, L.NODE_IDENTITY])


def test_env_file_quotes_what_systemd_would_misread() -> None:
    assert env_file({"A": 'pa"ss\\word $HOME'}) == 'A="pa\\"ss\\\\word $HOME"\n'
    with pytest.raises(ValueError, match="newline"):
        env_file({"A": "two\nlines"})


# --- the boot programs -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bookworm_ipxe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian bookworm's 2019 iPXE EFI build, which cannot run autoexec.ipxe."""
    work = tmp_path_factory.mktemp("bookworm-ipxe")
    subprocess.run(
        ["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", "ipxe/bookworm"], cwd=work, check=True
    )
    deb = next(work.glob("ipxe_*.deb"))
    subprocess.run(["dpkg-deb", "-x", deb, work / "x"], check=True)
    return work / "x/boot/ipxe.efi"


def test_the_fetched_ipxe_passes_the_checks(boot_files: BootFiles) -> None:
    check_ipxe_efi(boot_files.ipxe_efi)
    check_ipxe_lkrn(boot_files.ipxe_lkrn)


def test_bookworms_ipxe_is_refused_as_too_old(bookworm_ipxe: Path) -> None:
    with pytest.raises(BootloaderError, match=r"ephemeros:bootloader\.ipxeEfi: .* too old to run autoexec\.ipxe"):
        check_ipxe_efi(bookworm_ipxe)


@pytest.mark.parametrize(
    ("setting", "content", "message"),
    [
        ("ipxeEfi", b"#!/bin/sh\necho not efi\n", "is not an EFI program"),
        ("ipxeEfi", None, "cannot read"),
        ("ipxeLkrn", b"\0" * 4096, "is not a Linux kernel image"),
        ("ipxeLkrn", None, "cannot read"),
    ],
)
def test_a_bad_boot_program_is_refused_naming_its_setting(
    setting: str, content: bytes | None, message: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    if content is not None:
        bad.write_bytes(content)
    bootloader = Bootloader(**{setting: str(bad)})
    with pytest.raises(BootloaderError, match=rf"\n  - ephemeros:bootloader\.{setting}: .*{message}") as raised:
        check_bootloader(bootloader, REPO)
    assert raised.value.keys == [setting]


def test_an_arm64_efi_is_refused(tmp_path: Path, boot_files: BootFiles) -> None:
    data = bytearray(boot_files.ipxe_efi.read_bytes())
    pe = int.from_bytes(data[0x3C:0x40], "little")
    data[pe + 4 : pe + 6] = (0xAA64).to_bytes(2, "little")
    (tmp_path / "arm.efi").write_bytes(data)
    with pytest.raises(BootloaderError, match="not an x86_64 EFI application"):
        check_ipxe_efi(tmp_path / "arm.efi")


def test_missing_syslinux_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BootloaderError, match=r"bootloader\.syslinuxDir: .*gptmbr\.bin, .*ldlinux\.c32 missing"):
        check_bootloader(Bootloader(syslinux_dir=str(tmp_path)), REPO)


def test_every_bad_boot_program_is_listed_at_once(tmp_path: Path) -> None:
    (tmp_path / "not-efi").write_bytes(b"#!/bin/sh\n")
    bootloader = Bootloader(
        ipxe_efi=str(tmp_path / "not-efi"), ipxe_lkrn=str(tmp_path / "absent"), syslinux_dir=str(tmp_path)
    )
    with pytest.raises(BootloaderError) as raised:
        check_bootloader(bootloader, REPO)
    assert raised.value.keys == ["ipxeEfi", "ipxeLkrn", "syslinuxDir"]
    assert [p.split(":")[1].split(" ")[0] for p in raised.value.problems] == [
        "bootloader.ipxeEfi",
        "bootloader.ipxeLkrn",
        "bootloader.syslinuxDir",
    ]


# --- the image ---------------------------------------------------------------------------------------------


def sgdisk_table(image: Path) -> list[dict[str, str]]:
    out = subprocess.run(["sgdisk", "-p", str(image)], capture_output=True, text=True, check=True).stdout
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+(\w{4})\s+(\S+)$", out, re.MULTILINE)
    return [dict(zip(("number", "first", "last", "code", "name"), row, strict=True)) for row in rows]


def test_image_layout_and_contents(tmp_path: Path, boot_files: BootFiles) -> None:
    doc, secret = full_settings()
    loaded = load(doc, secret)
    spec = spec_for(loaded, "node1", boot_files)
    image = tmp_path / "node1.img"
    digest = build_image(image, spec)

    assert image.stat().st_size == B.IMAGE_SIZE <= 64 * 1024 * 1024
    assert image.stat().st_blocks * 512 < B.IMAGE_SIZE // 4  # sparse: the partitions' empty space takes no room
    assert image.stat().st_mode & 0o7777 == 0o600
    assert hashlib.sha256(image.read_bytes()).hexdigest() == digest
    assert image.read_bytes()[:440] == boot_files.gptmbr.read_bytes()

    table = sgdisk_table(image)
    assert [(p["code"], p["name"]) for p in table] == [("EF00", B.ESP_LABEL), ("8300", L.SECRETS_LABEL)]
    assert int(table[0]["first"]) * 512 == B.ESP_START
    assert int(table[1]["first"]) * 512 == B.SECRETS_START
    attributes = subprocess.run(["sgdisk", "-A", "1:show", str(image)], capture_output=True, text=True, check=True)
    assert "legacy BIOS bootable" in attributes.stdout

    esp = extract(image, B.ESP_START, B.ESP_SIZE, tmp_path / "esp.img")
    listing = subprocess.run(["mdir", "-i", str(esp), "-/", "-a", "::"], capture_output=True, text=True, check=True)
    for name in ("BOOTX64 EFI", "autoexec.ipxe", "ipxe.lkrn", "syslinux cfg", "ldlinux c32", "ldlinux sys"):
        assert name.lower() in listing.stdout.lower().replace("  ", " "), name
    loader = subprocess.run(["mtype", "-i", str(esp), f"::{B.EFI_LOADER}"], capture_output=True, check=True).stdout
    assert loader == boot_files.ipxe_efi.read_bytes()
    script = subprocess.run(["mtype", "-i", str(esp), f"::{B.BOOT_SCRIPT}"], capture_output=True, text=True, check=True)
    assert script.stdout == spec.boot_script
    assert "set boot-script https://ignition.ephemeros.test/lab/node1.ipxe\n" in script.stdout

    secrets = extract(image, B.SECRETS_START, B.SECRETS_SIZE, tmp_path / "secrets.img")
    label = subprocess.run(["e2label", str(secrets)], capture_output=True, text=True, check=True).stdout.strip()
    assert label == L.SECRETS_LABEL
    root = subprocess.run(["debugfs", "-R", "stat /", str(secrets)], capture_output=True, text=True, check=True)
    assert re.search(r"Mode:\s+0700", root.stdout)
    assert re.search(r"User:\s+0\s+Group:\s+0", root.stdout)
    for name, content in spec.secret_files.items():
        stat = subprocess.run(
            ["debugfs", "-R", f"stat /{name}", str(secrets)], capture_output=True, text=True, check=True
        )
        assert re.search(r"Mode:\s+0600", stat.stdout), name
        assert re.search(r"User:\s+0\s+Group:\s+0", stat.stdout), name
        dumped = subprocess.run(
            ["debugfs", "-R", f"cat /{name}", str(secrets)], capture_output=True, text=True, check=True
        )
        assert dumped.stdout == content
    assert not (tmp_path / f".{image.name}").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["esp.img", "node1.img", "secrets.img"]  # no leftovers


def test_many_files_fit_up_to_the_data_limit_and_more_is_refused(tmp_path: Path, boot_files: BootFiles) -> None:
    loaded = load(stack_settings("dev"))
    spec = spec_for(loaded, "node0", boot_files)
    count = 60  # a server with every feature and many add-ons' secret values carries a few dozen
    files = {f"addon-chart{i}-values.yaml": "x" * (B.SECRETS_DATA_LIMIT // count - 64) + "\n" for i in range(count)}
    build_image(tmp_path / "full.img", dataclasses.replace(spec, secret_files=files))
    secrets = extract(tmp_path / "full.img", B.SECRETS_START, B.SECRETS_SIZE, tmp_path / "secrets.img")
    listing = subprocess.run(["debugfs", "-R", "ls -p /", str(secrets)], capture_output=True, text=True, check=True)
    assert {line.split("/")[5] for line in listing.stdout.splitlines() if line.count("/") > 5} >= set(files)

    files["addon-big-values.yaml"] = "x" * 200_000
    with pytest.raises(ImageError, match=r"holds 3072 KiB, and its files take \d+ KiB \(the largest: addon-big"):
        build_image(tmp_path / "over.img", dataclasses.replace(spec, secret_files=files))


def test_same_inputs_give_the_same_image_and_a_rotated_secret_another(tmp_path: Path, boot_files: BootFiles) -> None:
    loaded = load(stack_settings("dev"))
    first = build_image(tmp_path / "a.img", spec_for(loaded, "node0", boot_files))
    again = build_image(tmp_path / "b.img", spec_for(loaded, "node0", boot_files))
    rotated = GeneratedSecrets("server-token-XYZ", "agent-token-NEW", "node-password-XYZ")
    other = build_image(tmp_path / "c.img", spec_for(loaded, "node0", boot_files, rotated))
    assert first == again
    assert other != first


def test_the_image_is_built_without_root(world_readable_tmp: Path, boot_files: BootFiles) -> None:
    """Run the builder as `nobody`: no root, no loop device; the files still belong to root on the stick."""
    world_readable_tmp.chmod(0o777)
    script = (
        "import pickle, sys; from pathlib import Path; from bootmedia.image import build_image; "
        "spec = pickle.loads(sys.stdin.buffer.read()); print(build_image(Path(sys.argv[1]), spec))"
    )
    import pickle

    spec = spec_for(load(stack_settings("dev")), "node2", boot_files)
    done = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            script,
            str(world_readable_tmp / "n.img"),
        ],
        input=pickle.dumps(spec),
        capture_output=True,
        cwd=REPO,
        env={**os.environ, "HOME": str(world_readable_tmp)},
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    image = world_readable_tmp / "n.img"
    assert image.stat().st_uid == 65534
    secrets = extract(image, B.SECRETS_START, B.SECRETS_SIZE, world_readable_tmp / "s.img")
    stat = subprocess.run(
        ["debugfs", "-R", f"stat /{L.K3S_ENV}", str(secrets)], capture_output=True, text=True, check=True
    )
    assert re.search(r"User:\s+0\s+Group:\s+0", stat.stdout)
