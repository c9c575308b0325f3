"""A stand-in for Flatcar's PXE images, built from Debian bookworm packages, to boot a whole node in tests.

Laid out under Flatcar's PXE file names (`<version>/flatcar_production_pxe.vmlinuz` and
`flatcar_production_pxe_image.cpio.gz`, see base/stick_layout.py), it boots from the project's unchanged sticks
with their unchanged kernel command line, and runs what a node runs on Flatcar:

- Debian's kernel; an initramfs made by Debian's dracut (059) with the `ignition` package's own dracut module
  (30ignition: Ignition 2.14, which reads spec 3.3.0) and systemd-networkd; Debian's systemd 252 after it.
- As Flatcar's PXE image does, the root lives in RAM: a tmpfs at /sysroot holding the image's /etc, /var, ...,
  with /usr mounted read-only from a squashfs that the initrd carries (`/usr.squashfs`).
- The stand-in's own small dracut module (harness/standins/flatcar/dracut) does what Flatcar's initramfs does
  around Ignition and Debian's leaves to the distribution: `flatcar.first_boot=` decides whether Ignition runs,
  Ignition's platform is `metal` (its config from `ignition.config.url=`, as on bare metal), systemd-networkd
  brings DHCP up before Ignition fetches, no `root=` means a root in RAM. Nothing of it is in the sticks or in
  the program's Ignition.
- The node's units find what they call on Flatcar: bash, coreutils, curl, iproute2, util-linux, e2fsprogs, kmod,
  ncat, systemd-resolved, ca-certificates; a `core` user (uid and gid 500, in sudo and systemd-journal).

What differs from Flatcar, and so is not tested by booting it:

- Versions: Debian's kernel, systemd 252 and Ignition 2.14 (upstream's), not Flatcar's own builds. Flatcar's
  Ignition writes SSH keys for its update-ssh-keys; the stand-in has no SSH server, so no login is tried.
- SELinux: no policy. Debian's Ignition relabels what it writes, so /etc/selinux/config names an empty policy
  (SELINUXTYPE=targeted, no file contexts) that it can relabel with; Flatcar ships a policy.
- No update engine and no locksmithd (the Ignition masks them all the same), no Docker or containerd, no
  torcx, no OEM partition, no afterburn; only the kernel modules the stand-in needs (virtio, USB storage, ext4,
  squashfs, bridge, br_netfilter, overlay); no SSH server; /etc/os-release says `ephemeros-flatcar-standin`.
- `core` is made by the image with its uid and groups, as Flatcar's is; Flatcar's has more groups (docker,
  portage, wheel).
- Under QEMU, Flatcar's own initramfs would pick its `qemu` platform (fw_cfg); the stand-in always uses `metal`,
  as Flatcar does on the bare metal ephemeros runs on.

Built once per recipe (its key covers the package list, the kernel package, the files under
harness/standins/flatcar and the builder's code) in the test assets' cache (harness/asset_cache.py), from this
machine's Debian mirror
(debootstrap and apt check packages against the archive's signed indexes), in a temporary directory renamed
into place when done. A "release" (`release()`) is that build with a small cpio appended that sets
/etc/os-release's VERSION (and any test files): two versions on a mirror cost one build.
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from base import stick_layout as B
from harness import apt_repo, asset_cache
from harness.asset_cache import CACHE
from harness.boot_assets import apt_download, kernel_package
from harness.processes import log_tail

SOURCES = Path(__file__).parent / "standins/flatcar"  # the dracut module and the root's own files
ROOT_IMAGE = "standin-root"  # where the kernel unpacks the root image in the initramfs (see the dracut module)
BUILD_TOOLS = {"debootstrap": "debootstrap", "depmod": "kmod", "modprobe": "kmod", "cpio": "cpio", "tar": "tar"}

# In the image besides debootstrap's minbase: what the initramfs is made with (dracut and its network modules,
# Ignition's dracut module, setfiles for Ignition's relabeling, mksquashfs for /usr), and what the node's units
# call on Flatcar.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "systemd-resolved",
    "udev",
    "dbus",
    "dracut-core",
    "dracut-network",
    "ignition",
    "policycoreutils",
    "squashfs-tools",
    "ca-certificates",
    "curl",
    "ncat",
    "iproute2",
    "kmod",
    "e2fsprogs",
    "procps",
)
# Kernel modules kept (with what they depend on): QEMU's virtio and e1000 network cards and disks, USB sticks on
# any host controller, ext4 (the secrets partition), squashfs and loop (/usr), and what k3s's unit loads.
KERNEL_MODULES = (
    "virtio_net",
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "virtio_console",
    "virtio_rng",
    "e1000",
    "e1000e",
    "xhci_pci",
    "ehci_pci",
    "ohci_pci",
    "uhci_hcd",
    "usb_storage",
    "uas",
    "sd_mod",
    "hid_generic",
    "usbhid",
    "ext4",
    "crc32c_generic",
    "squashfs",
    "loop",
    "overlay",
    "bridge",
    "br_netfilter",
    "qemu_fw_cfg",
)
# Left out of /usr: the build's tools and what no node reads.
USR_EXCLUDED = (
    "lib/dracut",
    "bin/ignition-validate",
    "share/doc",
    "share/man",
    "share/info",
    "share/locale",
    "share/lintian",
)
DRACUT_CONFIG = """hostonly="no"
add_dracutmodules+=" flatcar-standin "
omit_dracutmodules+=" plymouth i18n "
compress="gzip"
"""
FINALIZE_SCRIPT = """set -eu
groupadd --gid 500 core
useradd --uid 500 --gid 500 --create-home --shell /bin/bash --groups sudo,systemd-journal core
systemctl enable systemd-networkd.service systemd-resolved.service
rm -f /etc/machine-id /var/lib/dbus/machine-id /etc/hostname
: > /etc/fstab
printf '127.0.0.1\\tlocalhost\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n' > /etc/hosts
apt-get clean
rm -rf /var/lib/apt/lists/*
"""


@dataclass(frozen=True)
class StandinRecipe:
    """Everything that goes into the stand-in but the builder's code and SOURCES; the key covers all three."""

    suite: str
    kernel: str  # Debian's kernel package
    packages: tuple[str, ...]
    kernel_modules: tuple[str, ...]
    usr_excluded: tuple[str, ...]
    dracut_config: str
    finalize_script: str

    @property
    def key(self) -> str:
        builder = "".join(inspect.getsource(f) for f in (_build, _prune_modules, _initrd, _chroot, _cpio))
        sources = "".join(
            f"{path.relative_to(SOURCES)}:{path.stat().st_mode & 0o777:o}:{path.read_text()}"
            for path in sorted(SOURCES.rglob("*"))
            if path.is_file()
        )
        text = json.dumps(asdict(self), sort_keys=True) + builder + sources
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def recipe() -> StandinRecipe:
    return StandinRecipe(
        suite="bookworm",
        kernel=kernel_package(),
        packages=PACKAGES,
        kernel_modules=KERNEL_MODULES,
        usr_excluded=USR_EXCLUDED,
        dracut_config=DRACUT_CONFIG,
        finalize_script=FINALIZE_SCRIPT,
    )


@dataclass(frozen=True)
class FlatcarStandin:
    kernel: Path
    initrd: Path  # dracut's initramfs, then /usr.squashfs, then the rest of the root: see _initrd
    packages: Path  # the image's installed packages and versions (dpkg-query)
    key: str
    seconds: float  # how long the build took (0 when it came from the cache)


def _in(directory: Path, key: str, seconds: float = 0) -> FlatcarStandin:
    return FlatcarStandin(directory / "vmlinuz", directory / "initrd.img", directory / "packages.txt", key, seconds)


def _run_logged(command: Sequence[str], log: Path, **kwargs: Any) -> None:
    with log.open("a") as output:
        output.write(f"$ {' '.join(command)}\n")
        output.flush()
        done = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, **kwargs)
    if done.returncode != 0:
        tail = log_tail(log.read_text(errors="replace"))
        raise RuntimeError(f"{command[0]} failed ({done.returncode}) building the Flatcar stand-in:\n{tail}")


def _chroot(rootfs: Path, script: str) -> list[str]:
    """`script` run by sh in the chroot with /proc, /sys and /dev, in a mount namespace of its own (its mounts go
    away with it, even if it is killed)."""
    enter = (
        'mount -t proc proc "$1/proc" && mount -t sysfs sysfs "$1/sys" && mount --bind /dev "$1/dev" '
        '&& exec chroot "$1" /bin/sh -c "$2"'
    )
    return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", enter, "sh", str(rootfs), script]


def _prune_modules(rootfs: Path, version: str, keep: Sequence[str]) -> None:
    """Delete every kernel module but `keep` and what they depend on, and index the rest."""
    tree = rootfs / "usr/lib/modules" / version
    subprocess.run(["depmod", "-b", str(rootfs), version], check=True)
    order = subprocess.run(
        ["modprobe", "-d", str(rootfs), "-S", version, "--show-depends", "--all", *keep],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    kept = {Path(path).resolve() for path in re.findall(r"^insmod (\S+)", order, re.MULTILINE)}
    for module in tree.rglob("*.ko*"):
        if module.resolve() not in kept:
            module.unlink()
    subprocess.run(["depmod", "-b", str(rootfs), version], check=True)


def _cpio(directory: Path, names: Sequence[str]) -> bytes:
    """A newc cpio archive of `names` (paths relative to `directory`), the format of a Linux initramfs."""
    return subprocess.run(
        ["cpio", "--null", "--create", "--format=newc", "--quiet", "--reproducible"],
        cwd=directory,
        input=b"".join(name.encode() + b"\0" for name in names),
        capture_output=True,
        check=True,
    ).stdout


def _padded(data: bytes) -> bytes:
    """The kernel finds an uncompressed cpio after another archive only at a 4-byte boundary; zeros are skipped."""
    return data + b"\0" * (-len(data) % 4)


def _initrd(tree: Path, dracut_image: bytes, usr_squashfs: str) -> bytes:
    """dracut's initramfs, then /usr.squashfs (uncompressed: it is compressed already), then the rest of the root
    under /standin-root (gzip), which the kernel unpacks one after the other into its initramfs."""
    rootfs = tree / ROOT_IMAGE
    mount_points = {"proc", "sys", "dev", "boot", "tmp", "run"}  # kept empty
    names = [ROOT_IMAGE]
    for path in sorted(rootfs.rglob("*")):
        top, *below = path.relative_to(rootfs).parts
        if top == "usr" or (top in mount_points and below):  # /usr is mounted read-only, before the copy
            continue
        names.append(f"{ROOT_IMAGE}/{path.relative_to(rootfs)}")
    rest = gzip.compress(_cpio(tree, names), compresslevel=6, mtime=0)
    return _padded(dracut_image) + _padded(_cpio(tree, [usr_squashfs])) + _padded(rest)


def _build(recipe: StandinRecipe, work: Path) -> Path:
    tree, out, log = work / "tree", work / "out", work / "build.log"
    rootfs = tree / ROOT_IMAGE
    out.mkdir()
    mirror = apt_repo.host_mirrors(recipe.suite)[recipe.suite]
    debs = CACHE / "debootstrap-debs"  # packages kept between builds of changed recipes
    debs.mkdir(parents=True, exist_ok=True)
    _run_logged(
        [
            "unshare", "--mount", "--propagation", "private", "debootstrap", "--variant=minbase",
            "--components=main", f"--include={','.join(recipe.packages)}", f"--cache-dir={debs}",
            recipe.suite, str(rootfs), mirror,
        ],
        log,
    )  # fmt: skip
    # The kernel's files only: its package would run an initramfs generator with Debian's defaults.
    kernel_deb = apt_download(recipe.kernel, CACHE / "debs")
    _run_logged(
        ["/bin/sh", "-c", 'dpkg-deb --fsys-tarfile "$1" | tar -x --keep-directory-symlink -C "$2"', "sh",
         str(kernel_deb), str(rootfs)],
        log,
    )  # fmt: skip
    version = recipe.kernel.removeprefix("linux-image-")
    _prune_modules(rootfs, version, recipe.kernel_modules)
    module = rootfs / "usr/lib/dracut/modules.d/99flatcar-standin"
    shutil.copytree(SOURCES / "dracut", module)
    shutil.copytree(SOURCES / "root", rootfs, dirs_exist_ok=True)
    (rootfs / "etc/dracut.conf.d/50-flatcar-standin.conf").write_text(recipe.dracut_config)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
    _run_logged(_chroot(rootfs, recipe.finalize_script), log, env=env)
    _run_logged(_chroot(rootfs, f"dracut --force --kver {version} /boot/initrd.img"), log, env=env)
    excluded = " ".join(f"-e {path}" for path in recipe.usr_excluded)
    squashfs = "usr.squashfs"
    _run_logged(
        _chroot(rootfs, f"mksquashfs /usr /{squashfs} -comp zstd -Xcompression-level 6 -noappend -quiet {excluded}"),
        log,
        env=env,
    )
    (rootfs / squashfs).rename(tree / squashfs)
    packages = subprocess.run(
        _chroot(rootfs, "dpkg-query -W -f '${Package} ${Version}\\n'"), capture_output=True, text=True, check=True
    ).stdout
    standin = _in(out, "")
    shutil.copyfile(rootfs / f"boot/vmlinuz-{version}", standin.kernel)
    standin.initrd.write_bytes(_initrd(tree, (rootfs / "boot/initrd.img").read_bytes(), squashfs))
    standin.packages.write_text(packages)
    (out / "recipe.json").write_text(json.dumps(asdict(recipe), indent=1))
    shutil.copyfile(log, out / "build.log")
    return out


def require_tools() -> None:
    if os.geteuid() != 0:
        raise RuntimeError("the Flatcar stand-in is built as root (debootstrap, chroot)")
    missing = {tool: package for tool, package in BUILD_TOOLS.items() if shutil.which(tool) is None}
    if missing:
        raise RuntimeError(
            f"missing {', '.join(missing)}: run `make setup-test` (Debian: {' '.join(sorted(set(missing.values())))})"
        )


def flatcar_standin(of: StandinRecipe | None = None) -> FlatcarStandin:
    """The stand-in for `of` (the current recipe by default): built once (a few minutes), then from the cache."""
    wanted = of or recipe()

    def build(work: Path) -> Path:
        require_tools()
        return _build(wanted, work)

    done = CACHE / f"flatcar-standin-{wanted.key}"
    return _in(done, wanted.key, asset_cache.cached(done, build))


def _newc_entry(name: str, mode: int, data: bytes = b"") -> bytes:
    """One entry of a newc cpio archive, owned by root."""
    fields = [0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
    header = "070701" + "".join(f"{value:08x}" for value in fields)
    entry = header.encode() + name.encode() + b"\0"
    return _padded(entry) + _padded(data)


def os_release(version: str, key: str) -> str:
    return (
        'NAME="ephemeros Flatcar stand-in"\n'
        "ID=ephemeros-flatcar-standin\n"
        "ID_LIKE=debian\n"
        f"VERSION={version}\n"
        f"VERSION_ID={version}\n"
        f"BUILD_ID={key}\n"
        f'PRETTY_NAME="Flatcar stand-in {version} (Debian 12 bookworm)"\n'
    )


def release(standin: FlatcarStandin, version: str, mirror: Path, files: Mapping[str, str] | None = None) -> Path:
    """Lay out `standin` as Flatcar `version` under `mirror` (Flatcar's PXE file names); returns its directory.

    The initrd is the build's with one more cpio appended, whose files replace the image's: /etc/os-release
    with this VERSION, and `files` (path in the root, e.g. "etc/hosts" -> content; their directories must exist).
    """
    entries = {"etc/os-release": os_release(version, standin.key), **(files or {})}
    overlay = b"".join(_newc_entry(f"{ROOT_IMAGE}/{path}", 0o100644, text.encode()) for path, text in entries.items())
    trailer = _newc_entry("TRAILER!!!", 0)
    directory = mirror / version
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(standin.kernel, directory / B.FLATCAR_KERNEL)
    with (directory / B.FLATCAR_INITRD).open("wb") as initrd, standin.initrd.open("rb") as base:
        shutil.copyfileobj(base, initrd)
        initrd.write(gzip.compress(overlay + trailer, mtime=0))
    return directory
