"""A stand-in for Flatcar's PXE kernel and initrd: Debian's kernel and a busybox init that reports what it sees.

The init prints the kernel command line, finds the partition labelled `secrets` (loading the USB, SCSI and
ext4 modules it needs), and lists its files with modes, owners and sha256 on the serial port, then powers off.
Packages come from this machine's Debian mirror through apt, which checks them against the archive's signed
index; everything is cached under .tools/test-assets.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.stack import REPO

CACHE = REPO / ".tools/test-assets"
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


def _apt_download(package: str, into: Path) -> Path:
    existing = sorted(into.glob(f"{package}_*.deb"))
    if existing:
        return existing[-1]
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", package],
        cwd=into,
        check=True,
        capture_output=True,
    )
    return sorted(into.glob(f"{package}_*.deb"))[-1]


def _kernel_package() -> str:
    depends = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Depends: (linux-image-[\d.]+-\d+-amd64)\b", depends)
    if not match:
        raise RuntimeError("cannot find Debian's amd64 kernel package (apt-cache depends linux-image-amd64)")
    return match.group(1)


def _cpio_newc(root: Path) -> bytes:
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
    kernel_pkg = _kernel_package()
    recipe = hashlib.sha256(f"{kernel_pkg}\n{MODULES}\n{INIT}".encode()).hexdigest()[:12]
    done = CACHE / f"{kernel_pkg}-{recipe}"  # a changed init or module list builds anew
    kernel, initrd = done / "vmlinuz", done / "initrd.cpio.gz"
    if kernel.is_file() and initrd.is_file():
        return BootAssets(kernel, initrd)
    debs = CACHE / "debs"
    work = CACHE / f"work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        kernel_root, busybox_root, initramfs = work / "kernel", work / "busybox", work / "initramfs"
        subprocess.run(["dpkg-deb", "-x", _apt_download(kernel_pkg, debs), kernel_root], check=True)
        subprocess.run(["dpkg-deb", "-x", _apt_download("busybox-static", debs), busybox_root], check=True)
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
        done.mkdir(parents=True, exist_ok=True)
        shutil.copy2(next((kernel_root / "boot").glob("vmlinuz-*")), kernel)
        initrd.write_bytes(_cpio_newc(initramfs))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BootAssets(kernel, initrd)
