"""Write a stick image to a device, refusing any device it could hurt, showing progress and verifying the result.

A device is written only if it is a whole, writable, removable block device (removable, or attached through USB,
as many USB disks that call themselves fixed are) that nothing is mounted from (directly, through a partition, or
under device-mapper) and that holds no swap and not the running system. Anything else is refused: a regular file
included, since the image would land in it world-readable and no stick would be written.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

CHUNK = 4 * 1024 * 1024


class DeviceRefused(RuntimeError):
    """The target is not one ephemeros may erase; the message says why."""


@dataclass(frozen=True)
class System:
    """Where to read the running system's view of its devices (a test gives a made-up one)."""

    sys_root: Path = Path("/sys")
    mountinfo: Path = Path("/proc/self/mountinfo")
    swaps: Path = Path("/proc/swaps")

    def block(self, name: str) -> Path:
        return self.sys_root / "class/block" / name

    def name_of(self, major_minor: str) -> str | None:
        """Kernel name (e.g. sdb1) of the block device with this major:minor."""
        link = self.sys_root / "dev/block" / major_minor
        return link.resolve().name if link.exists() else None

    def on_usb(self, name: str) -> bool:
        """Whether the disk hangs off a USB bus (its sysfs path goes through a usb device)."""
        return "/usb" in str(self.block(name).resolve())

    def attribute(self, name: str, attribute: str) -> str | None:
        try:
            return (self.block(name) / attribute).read_text().strip()
        except OSError:
            return None

    def disks_under(self, name: str) -> set[str]:
        """The whole disks that block device `name` lives on, through partitions and device-mapper."""
        path = self.block(name)
        if (path / "partition").exists():
            return {path.resolve().parent.name}
        slaves = path / "slaves"
        if slaves.is_dir() and any(slaves.iterdir()):
            return set().union(*(self.disks_under(s.name) for s in slaves.iterdir()))
        return {name}

    def mounts(self) -> Iterator[tuple[str | None, str]]:
        """(kernel name of the device, mount point) of every mounted filesystem."""
        for line in self.mountinfo.read_text().splitlines():
            fields, _, tail = line.partition(" - ")
            major_minor, mount_point = fields.split()[2], fields.split()[4]
            source = tail.split()[1] if len(tail.split()) > 1 else ""
            # Filesystems such as btrfs show an anonymous major:minor; their source names the device.
            name = self.name_of(major_minor)
            if name is None and source.startswith("/dev/"):
                name = Path(source).resolve().name
            yield name, mount_point

    def swap_devices(self) -> Iterator[str]:
        for line in self.swaps.read_text().splitlines()[1:]:
            device = line.split()[0]
            if device.startswith("/dev/"):
                yield Path(device).resolve().name


def check_block_device(name: str, image_size: int, system: System) -> None:
    """Refuse (DeviceRefused) unless block device `name` may be erased to hold an image of `image_size` bytes."""
    if not system.block(name).exists():
        raise DeviceRefused(f"/dev/{name} is not a block device this system knows")
    if (system.block(name) / "partition").exists():
        raise DeviceRefused(f"/dev/{name} is a partition: give the whole stick (e.g. /dev/sdX, not /dev/sdX1)")
    if system.attribute(name, "removable") != "1" and not system.on_usb(name):
        raise DeviceRefused(f"/dev/{name} is neither removable nor attached through USB; ephemeros only writes sticks")
    if system.attribute(name, "ro") == "1":
        raise DeviceRefused(f"/dev/{name} is read-only (is the stick's lock switch on?)")
    for used, mount_point in system.mounts():
        if used is None or not system.block(used).exists() or name not in system.disks_under(used):
            continue
        if mount_point == "/":
            raise DeviceRefused(f"/dev/{name} holds the running system (/ is mounted from it)")
        raise DeviceRefused(f"/dev/{name} is in use: {mount_point} is mounted from it; unmount it first")
    for swap in system.swap_devices():
        if name in system.disks_under(swap):
            raise DeviceRefused(f"/dev/{name} is in use as swap; swapoff it first")
    sectors = system.attribute(name, "size")
    if sectors is None or int(sectors) * 512 < image_size:
        raise DeviceRefused(f"/dev/{name} is smaller than the image ({image_size} bytes)")


def check_target(target: Path, image_size: int, system: System) -> None:
    """Refuse anything but an erasable whole removable disk."""
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        raise DeviceRefused(f"{target} does not exist: is the stick plugged in?") from None
    except OSError as error:
        raise DeviceRefused(f"{target} cannot be examined: {error.strerror}") from None
    if stat.S_ISREG(mode):
        raise DeviceRefused(
            f"{target} is a regular file, not a stick: name the stick's whole device, e.g. /dev/disk/by-id/usb-..."
            " (to copy the image somewhere, use the stickImage output)"
        )
    if not stat.S_ISBLK(mode):
        raise DeviceRefused(f"{target} is not a block device: name the stick's whole device")
    rdev = target.stat().st_rdev
    name = system.name_of(f"{os.major(rdev)}:{os.minor(rdev)}")
    if name is None:
        raise DeviceRefused(f"{target} is not a block device this system knows")
    check_block_device(name, image_size, system)


def write_image(image: Path, target: Path, progress: Callable[[str], None], system: System | None = None) -> str:
    """Check `target`, write `image` to it with progress reports, read it back and compare; returns the sha256."""
    size = image.stat().st_size
    check_target(target, size, system or System())
    expected = hashlib.sha256()
    written = 0
    next_report = 0
    fd = os.open(target, os.O_WRONLY)
    try:
        with image.open("rb") as source:
            while chunk := source.read(CHUNK):
                os.write(fd, chunk)
                expected.update(chunk)
                written += len(chunk)
                percent = written * 100 // size
                if percent >= next_report:
                    progress(f"writing {image.name} to {target}: {percent}% ({written >> 20} MiB of {size >> 20} MiB)")
                    next_report += 25
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # read back from the device, not the page cache
    finally:
        os.close(fd)
    actual = hashlib.sha256()
    with target.open("rb") as back:
        remaining = size
        while remaining and (chunk := back.read(min(CHUNK, remaining))):
            actual.update(chunk)
            remaining -= len(chunk)
    if actual.hexdigest() != expected.hexdigest():
        raise RuntimeError(f"verifying {target} failed: what was read back differs from {image.name}")
    progress(f"verified {target}: its first {size} bytes are {image.name} (sha256 {expected.hexdigest()[:16]}...)")
    return expected.hexdigest()
