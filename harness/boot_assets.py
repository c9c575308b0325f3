"""A stand-in for Flatcar's PXE kernel and initrd: Debian's kernel and a busybox init that reports what it sees.

The init prints the kernel command line, finds the partition labelled `secrets` (loading the USB, SCSI and
ext4 modules it needs), and lists its files with modes, owners and sha256 on the serial port, then powers off.
Packages come from this machine's Debian mirror through apt, which checks them against the archive's signed
index; everything is cached with the test assets (harness/asset_cache.py).
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import asset_cache
from harness.asset_cache import CACHE

MARKER = "EPHEMEROS-TEST"
# Modules (and what they depend on) for a USB stick on QEMU's xHCI controller, and its ext4 partition.
MODULES = ("xhci_pci", "usb_storage", "sd_mod", "ext4", "crc32c_generic")

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() {{ echo "{marker} $*" > /dev/ttyS0; }}
say "cmdline $(cat /proc/cmdline)"
{insmods}
device=""
for attempt in $(seq 1 120); do
    device=$(findfs LABEL=secrets 2>/dev/null) && break
    sleep 0.5
done
[ -n "$device" ] || {{ say "no secrets partition"; poweroff -f; }}
mkdir -p /mnt
mount -t ext4 -o ro "$device" /mnt || {{ say "cannot mount $device"; poweroff -f; }}
say "root $(stat -c '%a %u:%g' /mnt)"
for f in /mnt/*; do
    say "file $(basename "$f") $(stat -c '%a %u:%g' "$f") $(sha256sum "$f" | cut -d' ' -f1)"
done
say "done"
poweroff -f
"""


@dataclass(frozen=True)
class BootAssets:
    kernel: Path
    initrd: Path


def apt_download(package: str, into: Path) -> Path:
    """`package`'s .deb from this machine's Debian mirror (apt checks it against the signed index), kept in `into`."""
    existing = sorted(into.glob(f"{package}_*.deb"))
    if existing:
        return existing[-1]
    into.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{package}-", dir=into))  # renamed into place whole: others may look
    try:
        subprocess.run(
            ["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", package],
            cwd=work,
            check=True,
            capture_output=True,
        )
        downloaded = next(work.glob(f"{package}_*.deb"))
        downloaded.rename(into / downloaded.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return sorted(into.glob(f"{package}_*.deb"))[-1]


def kernel_package() -> str:
    """The name of Debian's current amd64 kernel package (what linux-image-amd64 depends on)."""
    depends = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Depends: (linux-image-[\d.]+-\d+-amd64)\b", depends)
    if not match:
        raise RuntimeError("cannot find Debian's amd64 kernel package (apt-cache depends linux-image-amd64)")
    return match.group(1)


def cpio_newc(root: Path) -> bytes:
    """`root`'s tree as a gzipped newc cpio archive, the format of a Linux initramfs, the same bytes each time."""
    names = [".", *sorted(f"./{p.relative_to(root)}" for p in root.rglob("*"))]
    listing = b"\0".join(name.encode() for name in names) + b"\0"
    archive = subprocess.run(
        ["cpio", "--null", "--create", "--format=newc", "--quiet", "--reproducible"],
        cwd=root,
        input=listing,
        capture_output=True,
        check=True,
    ).stdout
    return gzip.compress(archive, mtime=0)


def boot_assets() -> BootAssets:
    """Build (once) and return the test kernel and initrd."""
    kernel_pkg = kernel_package()
    recipe = hashlib.sha256(f"{kernel_pkg}\n{MODULES}\n{INIT}".encode()).hexdigest()[:12]
    done = CACHE / f"{kernel_pkg}-{recipe}"  # a changed init or module list builds anew
    if not done.is_dir():
        with asset_cache.building(done.name):
            if not done.is_dir():  # not built by another process while this one waited
                _build(done, kernel_pkg)
    asset_cache.mark_used(done)
    return BootAssets(done / "vmlinuz", done / "initrd.cpio.gz")


def _build(done: Path, kernel_pkg: str) -> None:
    debs = CACHE / "debs"
    work = Path(tempfile.mkdtemp(prefix=f".{done.name}-", dir=CACHE))
    out = work / "out"
    try:
        kernel_root, busybox_root, initramfs = work / "kernel", work / "busybox", work / "initramfs"
        subprocess.run(["dpkg-deb", "-x", apt_download(kernel_pkg, debs), kernel_root], check=True)
        subprocess.run(["dpkg-deb", "-x", apt_download("busybox-static", debs), busybox_root], check=True)
        version = kernel_pkg.removeprefix("linux-image-")
        subprocess.run(["depmod", "-b", kernel_root, version], check=True)
        order = subprocess.run(
            ["modprobe", "-d", kernel_root, "-S", version, "--show-depends", "--all", *MODULES],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        modules = list(dict.fromkeys(re.findall(r"^insmod (\S+)", order, re.MULTILINE)))
        for directory in ("bin", "proc", "sys", "dev", "lib/modules"):
            (initramfs / directory).mkdir(parents=True, exist_ok=True)
        shutil.copy2(busybox_root / "bin/busybox", initramfs / "bin/busybox")
        insmods = []
        for module in modules:
            name = Path(module).name
            shutil.copy2(module, initramfs / "lib/modules" / name)
            insmods.append(f"insmod /lib/modules/{name} 2>/dev/null")
        init = initramfs / "init"
        init.write_text(INIT.format(marker=MARKER, insmods="\n".join(insmods)))
        init.chmod(0o755)
        out.mkdir()
        shutil.copy2(next((kernel_root / "boot").glob("vmlinuz-*")), out / "vmlinuz")
        (out / "initrd.cpio.gz").write_bytes(cpio_newc(initramfs))
        out.chmod(0o755)
        out.rename(done)
    finally:
        shutil.rmtree(work, ignore_errors=True)
