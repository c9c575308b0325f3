"""Writing a stick: every refusal, against a made-up system view and real devices; the write itself, to a real
block device (a loop device, which a made-up view calls removable)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from bootmedia.device import DeviceRefused, System, check_block_device, check_target, write_image
from harness.loop_device import loop_device, major_minor

IMAGE_SIZE = 14 * 1024 * 1024
STICK_SECTORS = str(16 * 1024 * 1024 * 1024 // 512)  # a 16 GiB stick


class FakeSystem:
    """A /sys and /proc with the block devices a test declares."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.system = System(root / "sys", root / "mountinfo", root / "swaps")
        (root / "sys/class/block").mkdir(parents=True)
        (root / "sys/dev/block").mkdir(parents=True)
        (root / "mountinfo").write_text("")
        (root / "swaps").write_text("Filename Type Size Used Priority\n")
        self.minor = 0

    def _link(self, name: str, device_dir: Path, number: str | None = None) -> None:
        (self.root / "sys/class/block" / name).symlink_to(device_dir)
        self.minor += 1
        (self.root / "sys/dev/block" / (number or f"8:{self.minor}")).symlink_to(device_dir)

    def number(self, name: str) -> str:
        for link in (self.root / "sys/dev/block").iterdir():
            if link.resolve().name == name:
                return link.name
        raise KeyError(name)

    def disk(
        self,
        name: str,
        removable: str = "1",
        ro: str = "0",
        sectors: str = STICK_SECTORS,
        number: str | None = None,
        bus: str = "block",
    ) -> None:
        directory = self.root / "sys/devices" / bus / name
        directory.mkdir(parents=True)
        for attribute, value in (("removable", removable), ("ro", ro), ("size", sectors)):
            (directory / attribute).write_text(value + "\n")
        self._link(name, directory, number)

    def partition(self, disk: str, name: str) -> None:
        directory = self.root / "sys/devices/block" / disk / name
        directory.mkdir()
        (directory / "partition").write_text("1\n")
        self._link(name, directory)

    def mapper(self, name: str, *slaves: str) -> None:
        directory = self.root / "sys/devices/virtual/block" / name
        (directory / "slaves").mkdir(parents=True)
        for slave in slaves:
            (directory / "slaves" / slave).symlink_to((self.root / "sys/class/block" / slave).resolve())
        self._link(name, directory)

    def mount(self, name: str, mount_point: str) -> None:
        with (self.root / "mountinfo").open("a") as info:
            info.write(f"36 1 {self.number(name)} / {mount_point} rw,relatime shared:1 - ext4 /dev/{name} rw\n")

    def swap(self, name: str) -> None:
        with (self.root / "swaps").open("a") as swaps:
            swaps.write(f"/dev/{name} partition 1048572 0 -2\n")


@pytest.fixture
def machine(tmp_path: Path) -> FakeSystem:
    """A laptop: internal disk sda (root on LVM over sda2), and a USB stick sdb with one partition."""
    fake = FakeSystem(tmp_path)
    fake.disk("sda", removable="0")
    fake.partition("sda", "sda1")
    fake.partition("sda", "sda2")
    fake.mapper("dm-0", "sda2")
    fake.mount("dm-0", "/")
    fake.mount("sda1", "/boot")
    fake.disk("sdb")
    fake.partition("sdb", "sdb1")
    return fake


def test_an_unmounted_removable_stick_may_be_written(machine: FakeSystem) -> None:
    check_block_device("sdb", IMAGE_SIZE, machine.system)


@pytest.mark.parametrize(
    ("setup", "device", "reason"),
    [
        (lambda m: None, "sdb1", "is a partition: give the whole stick"),
        (lambda m: None, "sda", "is neither removable nor attached through USB"),
        (lambda m: m.disk("sdc", ro="1"), "sdc", "is read-only"),
        (lambda m: m.mount("sdb1", "/media/usb"), "sdb", "is in use: /media/usb is mounted from it"),
        (lambda m: m.swap("sdb1"), "sdb", "is in use as swap"),
        (lambda m: m.disk("sdc", sectors="1024"), "sdc", "is smaller than the image"),
        (lambda m: None, "sdz", "is not a block device this system knows"),
    ],
    ids=["partition", "not-removable", "read-only", "mounted", "swap", "too-small", "unknown"],
)
def test_refusals(machine: FakeSystem, setup: object, device: str, reason: str) -> None:
    setup(machine)  # type: ignore[operator]
    with pytest.raises(DeviceRefused, match=reason):
        check_block_device(device, IMAGE_SIZE, machine.system)


def test_a_removable_disk_holding_the_running_system_is_refused(tmp_path: Path) -> None:
    """A machine booted from a USB disk: / is on LVM over that disk's partition."""
    fake = FakeSystem(tmp_path)
    fake.disk("sdb")
    fake.partition("sdb", "sdb2")
    fake.mapper("dm-0", "sdb2")
    fake.mount("dm-0", "/")
    with pytest.raises(DeviceRefused, match="holds the running system"):
        check_block_device("sdb", IMAGE_SIZE, fake.system)


def test_a_fixed_disk_attached_through_usb_may_be_written(tmp_path: Path) -> None:
    """Many USB disks (SSDs in enclosures) call themselves fixed; they hang off a USB bus."""
    fake = FakeSystem(tmp_path)
    fake.disk("sdc", removable="0", bus="pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/block")
    check_block_device("sdc", IMAGE_SIZE, fake.system)


def test_only_block_devices_are_targets(tmp_path: Path) -> None:
    with pytest.raises(DeviceRefused, match="does not exist: is the stick plugged in"):
        check_target(tmp_path / "absent", IMAGE_SIZE, System())
    with pytest.raises(DeviceRefused, match="is not a block device"):
        check_target(Path("/dev/null"), IMAGE_SIZE, System())
    with pytest.raises(DeviceRefused, match="is not a block device"):
        check_target(tmp_path, IMAGE_SIZE, System())
    (tmp_path / "file").write_bytes(b"\0" * IMAGE_SIZE)
    with pytest.raises(DeviceRefused, match="is a regular file, not a stick"):
        check_target(tmp_path / "file", IMAGE_SIZE, System())


def test_a_real_fixed_block_device_is_refused(tmp_path: Path) -> None:
    with loop_device(tmp_path / "disk", 32 * 1024 * 1024) as device:
        with pytest.raises(DeviceRefused, match="neither removable nor attached through USB"):
            check_target(device, IMAGE_SIZE, System())
        with pytest.raises(DeviceRefused, match="neither removable nor attached through USB"):
            write_image(tmp_path / "disk", device, print)


def test_writing_shows_progress_and_verifies(tmp_path: Path) -> None:
    image = tmp_path / "node.img"
    data = os.urandom(IMAGE_SIZE)
    image.write_bytes(data)
    lines: list[str] = []
    with loop_device(tmp_path / "stick", 32 * 1024 * 1024) as stick:  # a bigger stick with old contents
        view = FakeSystem(tmp_path / "view")
        view.disk(stick.name, number=major_minor(stick))
        digest = write_image(image, stick, lines.append, view.system)
        written = stick.read_bytes()

    assert written[:IMAGE_SIZE] == data
    assert written[IMAGE_SIZE:] == b"\xff" * (len(written) - IMAGE_SIZE)
    percents = [int(line.split(": ")[1].split("%")[0]) for line in lines if "%" in line]
    assert percents == sorted(percents)
    assert len(percents) >= 3
    assert percents[-1] == 100
    assert lines[-1].startswith(f"verified {stick}")
    assert digest == hashlib.sha256(data).hexdigest()
