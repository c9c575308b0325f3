"""Boot a stick image in QEMU, attached as a USB disk, under UEFI (OVMF) or legacy BIOS (SeaBIOS).

The serial console goes to a file that the caller watches; QEMU's user network lets the guest reach the
host's loopback as 10.0.2.2. Software emulation (TCG) keeps runs the same on every machine. `boot` runs a
stick until something shows on its console; `stick_vm` keeps a machine running, with a second serial port for
what the guest reports and a reset button (QMP), for a whole node and its reboots.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from harness.processes import log_tail, stop

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
HOST_FROM_GUEST = "10.0.2.2"
FIRMWARES = ("uefi", "bios")


@dataclass(frozen=True)
class Boot:
    serial: str
    seconds: float  # from QEMU's start until `until` held (or the end)
    reached: bool  # whether `until` held before the timeout
    qemu_errors: str = ""


def require_qemu() -> None:
    missing = [str(p) for p in (OVMF_CODE, OVMF_VARS) if not p.exists()]
    missing += [t for t in ("qemu-system-x86_64",) if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: run `make setup-test` (Debian: qemu-system-x86 ovmf)")


def _command(
    image: Path, firmware: str, workdir: Path, memory_mib: int, network: str, mac: str | None = None
) -> list[str]:
    """QEMU with `image` as a USB stick it boots from, under `firmware`, on QEMU's user network `network`."""
    command = [
        "qemu-system-x86_64",
        "-machine", "q35,accel=tcg,graphics=off",  # SeaBIOS then mirrors its screen to the serial port
        "-m", str(memory_mib),
        "-display", "none",
        "-device", "qemu-xhci,id=xhci",
        "-drive", f"if=none,id=stick,format=raw,readonly=on,file={image}",
        "-device", "usb-storage,bus=xhci.0,drive=stick,bootindex=0",
        "-netdev", network,
        "-device", f"virtio-net-pci,netdev=net0,romfile={f',mac={mac}' if mac else ''}",
    ]  # fmt: skip
    if firmware == "uefi":
        variables = workdir / "OVMF_VARS.fd"
        shutil.copyfile(OVMF_VARS, variables)
        command += [
            "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={variables}",
        ]  # fmt: skip
    elif firmware != "bios":
        raise ValueError(firmware)
    return command


def boot(image: Path, firmware: str, workdir: Path, until: Callable[[str], bool], timeout: float = 240) -> Boot:
    """Boot `image` until `until(serial output)` holds, QEMU exits, or `timeout` seconds pass."""
    workdir.mkdir(parents=True, exist_ok=True)
    serial = workdir / f"serial-{firmware}.log"
    serial.unlink(missing_ok=True)
    command = [
        *_command(image, firmware, workdir, 512, "user,id=net0"),
        "-serial", f"file:{serial}",
        "-no-reboot",
    ]  # fmt: skip
    started = time.monotonic()
    qemu = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    text = ""
    try:
        while time.monotonic() - started < timeout:
            text = serial.read_text(errors="replace") if serial.exists() else ""
            if until(text):
                return Boot(text, time.monotonic() - started, True)
            if qemu.poll() is not None:
                text = serial.read_text(errors="replace") if serial.exists() else ""
                break
            time.sleep(0.2)
    finally:
        qemu.kill()
        _, errors = qemu.communicate()
    return Boot(text, time.monotonic() - started, until(text), errors.decode(errors="replace"))


@dataclass
class StickVM:
    """A running machine booted from a stick: its console (ttyS0), its second serial port (ttyS1) and QMP."""

    name: str
    firmware: str
    address: str  # what QEMU's DHCP server gives the guest
    workdir: Path
    process: subprocess.Popen[bytes]
    started: float  # time.monotonic() at QEMU's start

    @property
    def console_log(self) -> Path:
        return self.workdir / "console.log"

    @property
    def report_log(self) -> Path:
        return self.workdir / "ttyS1.log"

    def console(self) -> str:
        return self.console_log.read_text(errors="replace") if self.console_log.exists() else ""

    def reports(self) -> str:
        return self.report_log.read_text(errors="replace") if self.report_log.exists() else ""

    def check_running(self) -> None:
        if self.process.poll() is not None:
            errors = (self.workdir / "qemu.log").read_text(errors="replace")
            raise RuntimeError(
                f"QEMU of {self.name} exited ({self.process.returncode}): {errors}\n"
                f"console:\n{log_tail(self.console(), 60)}"
            )

    def reset(self) -> None:
        """Press the machine's reset button (QMP system_reset): it boots again from its stick."""
        with socket.socket(socket.AF_UNIX) as qmp:
            qmp.connect(str(self.workdir / "qmp.sock"))
            stream = qmp.makefile("rw")
            stream.readline()  # the greeting
            for command in ("qmp_capabilities", "system_reset"):
                stream.write(json.dumps({"execute": command}) + "\n")
                stream.flush()
                while True:  # skip events until the command's answer
                    answer = json.loads(stream.readline())
                    if "return" in answer or "error" in answer:
                        break
                if "error" in answer:
                    raise RuntimeError(f"QMP {command} on {self.name}: {answer['error']}")


@contextmanager
def stick_vm(
    name: str,
    image: Path,
    firmware: str,
    workdir: Path,
    *,
    mac: str | None = None,
    address_index: int = 15,
    memory_mib: int = 1536,
) -> Iterator[StickVM]:
    """Run a machine that boots from `image` under `firmware` until the block ends; QEMU's DHCP server gives it
    10.0.2.<address_index>, so that machines on their own user networks still have addresses of their own."""
    require_qemu()
    workdir.mkdir(parents=True, exist_ok=True)
    address = str(IPv4Address("10.0.2.0") + address_index)
    command = [
        *_command(image, firmware, workdir, memory_mib, f"user,id=net0,dhcpstart={address}", mac),
        "-serial", f"file:{workdir / 'console.log'}",
        "-serial", f"file:{workdir / 'ttyS1.log'}",
        "-qmp", f"unix:{workdir / 'qmp.sock'},server=on,wait=off",
    ]  # fmt: skip
    with (workdir / "qemu.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (workdir / "qmp.sock").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"QEMU of {name} did not start: {(workdir / 'qemu.log').read_text()}")
            time.sleep(0.05)
        yield StickVM(name, firmware, address, workdir, process, time.monotonic())
    finally:
        stop(process)
