"""Build a node's stick image as a file: no root, no loop devices, the same bytes for the same inputs.

GPT disk made with sfdisk; the boot partition is FAT16 made with mkfs.vfat and filled with mtools, with syslinux
installed for BIOS and gptmbr.bin in the protective MBR; the secrets partition is ext4 made by `mkfs.ext4 -d`,
owned by root with debugfs. Timestamps and identifiers are fixed (derived from the node), so an image changes
only when what it holds changes.

Every node's boot partition is the same but for its boot script, so the rest of it is made once per boot programs
and kept for the process (a `pulumi up` builds many images in one provider process); an image then takes four short
programs. Images are written sparse: the partitions' empty space takes no room on disk where the file system allows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from base import node_layout as L
from base import stick_layout as B
from base.hostfiles import sha256_file
from bootmedia.bootloader import BootFiles

# Debian package of each tool the build runs.
TOOLS = {
    "sfdisk": "fdisk",
    "mkfs.vfat": "dosfstools",
    "mmd": "mtools",
    "mcopy": "mtools",
    "syslinux": "syslinux",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
}
EPOCH = 1577836800  # 2020-01-01T00:00:00Z: every timestamp in the image
ID_NAMESPACE = uuid.UUID("5d1b7a38-6f0e-4d7e-9c46-6a3f1c2f0e51")
SPARSE_BLOCK = 4096  # zeros in blocks this large are left as holes


class ImageError(RuntimeError):
    """The image could not be built; the message names the step. It never holds a secret."""


@dataclass(frozen=True)
class ImageSpec:
    """Everything a stick image is made of."""

    identity: str  # e.g. "<cluster>/<hostname>": seeds the image's identifiers
    boot_script: str
    syslinux_config: str
    boot_files: BootFiles
    secret_files: Mapping[str, str] = field(repr=False)


def missing_tools() -> list[str]:
    return sorted({f"{tool} (Debian: {package})" for tool, package in TOOLS.items() if shutil.which(tool) is None})


def _id(spec: ImageSpec, purpose: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{spec.identity}/{purpose}"))


def _run(step: str, *command: str | Path) -> None:
    env = {
        **os.environ,
        "LC_ALL": "C",
        "SOURCE_DATE_EPOCH": str(EPOCH),
        "E2FSPROGS_FAKE_TIME": str(EPOCH),
        "MTOOLS_SKIP_CHECK": "1",
    }
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise ImageError(f"{step} failed ({command[0]} exited {done.returncode}): {done.stderr.strip()}")


_TEMPLATES: dict[tuple[object, ...], bytes] = {}
_TEMPLATES_LOCK = threading.Lock()


def _boot_template(files: BootFiles, syslinux_config: str) -> bytes:
    """The boot partition with everything but the boot script: the boot programs and syslinux, installed."""
    key = (tuple(sorted(files.sha256.items())), syslinux_config)
    with _TEMPLATES_LOCK:
        if key not in _TEMPLATES:
            with tempfile.TemporaryDirectory(prefix="ephemeros-esp-") as tmp:
                _TEMPLATES[key] = _make_boot_template(Path(tmp), files, syslinux_config)
        return _TEMPLATES[key]


def _make_boot_template(work: Path, files: BootFiles, syslinux_config: str) -> bytes:
    path, config = work / "boot.img", work / B.SYSLINUX_CONFIG
    config.write_text(syslinux_config)
    os.utime(config, (EPOCH, EPOCH))
    with path.open("wb") as image:
        image.truncate(B.ESP_SIZE)
    _run("making the boot filesystem", "mkfs.vfat", "-F", "16", "-s", "1", "-n", B.ESP_LABEL, "--invariant", path)
    _run("making EFI/BOOT", "mmd", "-i", path, "::EFI", "::EFI/BOOT")
    copies = [
        (files.ipxe_efi, B.EFI_LOADER),
        (files.ipxe_lkrn, B.BIOS_IPXE),
        (config, B.SYSLINUX_CONFIG),
        (files.ldlinux_c32, "ldlinux.c32"),
    ]
    for source, name in copies:
        _run(f"copying {name}", "mcopy", "-m", "-i", path, source, f"::{name}")
    _run("installing syslinux", "syslinux", "--install", path)
    return path.read_bytes()


def _boot_partition(path: Path, spec: ImageSpec, work: Path) -> None:
    path.write_bytes(_boot_template(spec.boot_files, spec.syslinux_config))
    script = work / B.BOOT_SCRIPT
    script.write_text(spec.boot_script)
    os.utime(script, (EPOCH, EPOCH))
    _run(f"copying {B.BOOT_SCRIPT}", "mcopy", "-m", "-i", path, script, f"::{B.BOOT_SCRIPT}")


SECRETS_INODES = 32  # enough for 21 files; more files get more (the same count keeps older images' bytes)


def _secrets_partition(path: Path, spec: ImageSpec, work: Path) -> None:
    size = sum(len(content.encode()) for content in spec.secret_files.values())
    if size > B.SECRETS_DATA_LIMIT:
        biggest = max(spec.secret_files, key=lambda name: len(spec.secret_files[name]))
        raise ImageError(
            f"the secrets partition of {spec.identity} holds {B.SECRETS_DATA_LIMIT // 1024} KiB, and its files take "
            f"{size // 1024} KiB (the largest: {biggest}): make the secret values (addonValues) smaller"
        )
    staging = work / "secrets"
    staging.mkdir(mode=0o700)
    for name, content in sorted(spec.secret_files.items()):
        target = staging / name
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(content)
        os.utime(target, (EPOCH, EPOCH))
    os.utime(staging, (EPOCH, EPOCH))
    fs_id = _id(spec, "secrets-filesystem")
    _run(
        "making the secrets filesystem",
        "mkfs.ext4",
        "-q",
        "-F",
        "-L",
        L.SECRETS_LABEL,
        "-U",
        fs_id,
        "-E",
        f"root_owner=0:0,hash_seed={fs_id}",
        "-O",
        "^has_journal",
        "-N",
        str(max(SECRETS_INODES, len(spec.secret_files) + 16)),
        "-d",
        staging,
        path,
        str(B.SECRETS_SIZE // 1024) + "k",
    )
    # Whoever builds the image, on the node everything belongs to root: 0600 files in a 0700 root.
    commands = work / "debugfs.cmd"
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(EPOCH))
    lines = ["set_inode_field / mode 040700"]
    for inode in ["/", *(f"/{name}" for name in sorted(spec.secret_files))]:
        lines += [f"set_inode_field {inode} uid 0", f"set_inode_field {inode} gid 0"]
        lines += [f"set_inode_field {inode} {when} {stamp}" for when in ("atime", "mtime", "ctime", "crtime")]
    commands.write_text("\n".join(lines) + "\n")
    _run("setting ownership on the secrets filesystem", "debugfs", "-w", "-f", commands, path)


def _partition_table(spec: ImageSpec) -> str:
    """sfdisk's script for the image's GPT: the two partitions, with identifiers derived from the node."""

    def partition(start: int, size: int, kind: str, purpose: str, name: str, attrs: str = "") -> str:
        line = f"start={start // B.SECTOR}, size={size // B.SECTOR}, type={kind}, uuid={_id(spec, purpose)}, "
        return line + f'name="{name}"' + (f', attrs="{attrs}"' if attrs else "")

    lines = [
        "label: gpt",
        f"label-id: {_id(spec, 'disk')}",
        partition(B.ESP_START, B.ESP_SIZE, B.ESP_TYPE, "boot-partition", B.ESP_LABEL, B.LEGACY_BIOS_BOOTABLE),
        partition(B.SECRETS_START, B.SECRETS_SIZE, B.SECRETS_TYPE, "secrets-partition", L.SECRETS_LABEL),
    ]
    return "\n".join(lines) + "\n"


def _write_sparse(disk: BinaryIO, offset: int, data: bytes) -> None:
    """`data` at `offset`, leaving holes where whole blocks of it are zeros."""
    for start in range(0, len(data), SPARSE_BLOCK):
        block = data[start : start + SPARSE_BLOCK]
        if block.count(0) != len(block):
            disk.seek(offset + start)
            disk.write(block)


def _disk(path: Path, spec: ImageSpec, esp: Path, secrets: Path) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "r+b") as disk:
        disk.truncate(B.IMAGE_SIZE)  # a hole, all of it
    table = subprocess.run(
        ["sfdisk", "--no-reread", "--no-tell-kernel", "--quiet", str(path)],
        input=_partition_table(spec),
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
        check=False,
    )
    if table.returncode != 0:
        raise ImageError(f"partitioning failed (sfdisk exited {table.returncode}): {table.stderr.strip()}")
    with path.open("r+b") as disk:
        disk.write(spec.boot_files.gptmbr.read_bytes())  # BIOS boot code, before the partition table
        _write_sparse(disk, B.ESP_START, esp.read_bytes())
        _write_sparse(disk, B.SECRETS_START, secrets.read_bytes())


def build_image(target: Path, spec: ImageSpec) -> str:
    """Build the image at `target` (mode 0600, replaced in one step); returns its sha256."""
    missing = missing_tools()
    if missing:
        raise ImageError(f"building a stick needs {', '.join(missing)}: run `make up` or install them")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        work = Path(tmp)
        esp, secrets, disk = work / "boot.img", work / "secrets.img", work / "disk.img"
        _boot_partition(esp, spec, work)
        _secrets_partition(secrets, spec, work)
        _disk(disk, spec, esp, secrets)
        digest = sha256_file(disk)
        os.replace(disk, target)
    return digest
