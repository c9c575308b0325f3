"""Check the boot programs a stick is built from, so that a stick that cannot boot is never made.

Each check reads the file and fails with a message that says what is wrong and where to get a good one.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from base.hostfiles import sha256_bytes, sha256_file
from base.problems import Problems
from settings.model import Bootloader

GET_IPXE = (
    "use Debian trixie's (or newer) ipxe package, which `make` fetches into .tools/ipxe, "
    "or an iPXE you built from 2021 on"
)
PE_MACHINE_X86_64 = 0x8664
PE32_PLUS = 0x20B
EFI_APPLICATION = 10


class BootloaderError(Problems):
    """Boot programs that are missing or cannot do what the stick needs, each as (setting that names it, message)."""

    def __init__(self, refusals: list[tuple[str, str]]) -> None:
        self.refusals = refusals
        self.keys = [key for key, _ in refusals]
        problems = [f"ephemeros:bootloader.{key}: {message}" for key, message in refusals]
        super().__init__("no stick that boots can be made with these boot programs: {count} problem(s)", problems)


def _refuse(key: str, message: str) -> BootloaderError:
    return BootloaderError([(key, message)])


@dataclass(frozen=True)
class BootFiles:
    """Checked paths of everything the image builder copies onto the boot partition, with their sha256 when checked
    (so that a new iPXE or syslinux rebuilds the images, and a file changed since is noticed)."""

    ipxe_efi: Path
    ipxe_lkrn: Path
    gptmbr: Path
    ldlinux_c32: Path
    sha256: Mapping[str, str] = field(default_factory=dict, compare=False)  # by key of paths(), when checked

    def paths(self) -> dict[str, Path]:
        return {
            "ipxeEfi": self.ipxe_efi,
            "ipxeLkrn": self.ipxe_lkrn,
            "gptmbr": self.gptmbr,
            "ldlinuxC32": self.ldlinux_c32,
        }


def _read(key: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise _refuse(key, f"cannot read {path} ({error.strerror}): {GET_IPXE}") from None


def check_ipxe_efi(path: Path) -> str:
    """An x86_64 EFI application that is iPXE and runs autoexec.ipxe from the filesystem it was loaded from; its
    sha256."""
    data = _read("ipxeEfi", path)
    try:
        pe = struct.unpack_from("<I", data, 0x3C)[0]
        signature, machine = struct.unpack_from("<4sH", data, pe)
        magic = struct.unpack_from("<H", data, pe + 24)[0]
        subsystem = struct.unpack_from("<H", data, pe + 24 + 68)[0]
    except struct.error:
        signature = b""
    if data[:2] != b"MZ" or signature != b"PE\0\0":
        raise _refuse("ipxeEfi", f"{path} is not an EFI program: {GET_IPXE}")
    if machine != PE_MACHINE_X86_64 or magic != PE32_PLUS or subsystem != EFI_APPLICATION:
        raise _refuse("ipxeEfi", f"{path} is not an x86_64 EFI application (e.g. ipxe-amd64.efi)")
    if b"iPXE" not in data:
        raise _refuse("ipxeEfi", f"{path} is not iPXE: {GET_IPXE}")
    if b"autoexec.ipxe" not in data:
        raise _refuse(
            "ipxeEfi",
            f"{path} is an iPXE too old to run autoexec.ipxe from the stick (Debian bookworm's 2019 build is): "
            + GET_IPXE,
        )
    return sha256_bytes(data)


def check_ipxe_lkrn(path: Path) -> str:
    """iPXE as a Linux kernel image (bzImage), which runs an initrd beginning with #!ipxe as its script; its sha256."""
    data = _read("ipxeLkrn", path)
    if data[0x202:0x206] != b"HdrS":
        raise _refuse("ipxeLkrn", f"{path} is not a Linux kernel image such as ipxe.lkrn: {GET_IPXE}")
    return sha256_bytes(data)


def _check_syslinux(directory: Path) -> tuple[Path, Path]:
    gptmbr = directory / "mbr/gptmbr.bin"
    ldlinux = directory / "modules/bios/ldlinux.c32"
    missing = [needed for needed in (gptmbr, ldlinux) if not needed.is_file()]
    if missing:
        raise _refuse(
            "syslinuxDir",
            f"{', '.join(map(str, missing))} missing: install Debian's syslinux-common, or name syslinux's directory",
        )
    if gptmbr.stat().st_size != 440:
        raise _refuse("syslinuxDir", f"{gptmbr} is not syslinux's 440-byte GPT boot code")
    if shutil.which("syslinux") is None:
        raise _refuse("syslinuxDir", "the syslinux installer is not on PATH: install Debian's syslinux")
    return gptmbr, ldlinux


def check_bootloader(bootloader: Bootloader, project_dir: Path) -> BootFiles:
    """Check every boot program named by the `bootloader` setting (relative paths are from the project); raises
    one BootloaderError with every refusal."""
    efi = project_dir / bootloader.ipxe_efi
    lkrn = project_dir / bootloader.ipxe_lkrn
    refusals: list[tuple[str, str]] = []
    digests = {}
    for key, check, path in (("ipxeEfi", check_ipxe_efi, efi), ("ipxeLkrn", check_ipxe_lkrn, lkrn)):
        try:
            digests[key] = check(path)
        except BootloaderError as error:
            refusals += error.refusals
    try:
        gptmbr, ldlinux = _check_syslinux(Path(bootloader.syslinux_dir))
    except BootloaderError as error:
        raise BootloaderError(refusals + error.refusals) from None
    if refusals:
        raise BootloaderError(refusals)
    digests |= {"gptmbr": sha256_file(gptmbr), "ldlinuxC32": sha256_file(ldlinux)}
    return BootFiles(efi, lkrn, gptmbr, ldlinux, sha256=digests)
