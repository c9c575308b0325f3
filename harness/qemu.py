"""Boot a stick image in QEMU, attached as a USB disk, under UEFI (OVMF) or legacy BIOS (SeaBIOS).

The serial console goes to a file that the caller watches; QEMU's user network lets the guest reach the
host's loopback as 10.0.2.2. Software emulation (TCG) keeps runs the same on every machine.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def boot(image: Path, firmware: str, workdir: Path, until: Callable[[str], bool], timeout: float = 240) -> Boot:
    """Boot `image` until `until(serial output)` holds, QEMU exits, or `timeout` seconds pass."""
    workdir.mkdir(parents=True, exist_ok=True)
    serial = workdir / f"serial-{firmware}.log"
    serial.unlink(missing_ok=True)
    command = [
        "qemu-system-x86_64",
        "-machine", "q35,accel=tcg,graphics=off",  # SeaBIOS then mirrors its screen to the serial port
        "-m", "512",
        "-display", "none",
        "-serial", f"file:{serial}",
        "-no-reboot",
        "-device", "qemu-xhci,id=xhci",
        "-drive", f"if=none,id=stick,format=raw,readonly=on,file={image}",
        "-device", "usb-storage,bus=xhci.0,drive=stick,bootindex=0",
        "-netdev", "user,id=net0",
        "-device", "virtio-net-pci,netdev=net0,romfile=",
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
