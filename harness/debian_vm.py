"""Boot a stock Debian 12 VM, like Vultr's image, in QEMU with a given cloud-init user data, and watch it.

The image is debootstrap's minbase with a kernel, systemd, udev, cloud-init (NoCloud only), ifupdown and
isc-dhcp-client, and no PostgreSQL: the user data installs what it needs. It is built once per recipe
(`ImageRecipe.key` covers everything that goes into it) in the test assets' cache (harness/asset_cache.py), from
this machine's Debian mirror, in a temporary directory renamed into place when done; each boot writes to a qcow2
overlay on it.

Each VM runs in a network namespace of its own (see harness/netns.py): dnsmasq gives it its fixed
address, and a local apt repository (harness/apt_repo.py), at the address the image's sources.list
names, serves what the user data's packages need. A unit baked into the image reports cloud-init's outcome on
the second serial port once cloud-final is over. TCG only (KVM is not there on these machines).
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

from base.templating import Templates
from harness import apt_repo, asset_cache
from harness.netns import Lease, Network, dnsmasq, network_namespace
from harness.processes import log_tail, stop

CACHE = asset_cache.CACHE
BRIDGE = IPv4Interface("10.77.77.1/24")  # inside each run's own namespace, so runs never collide
DEFAULT_ADDRESS = "10.77.77.10"
MAC = "52:54:00:65:70:0a"
REPO_URL = f"http://{BRIDGE.ip}"  # where the image's sources.list finds the local apt repository
REPORT_BEGIN, REPORT_END = "EPHEMEROS-REPORT-BEGIN", "EPHEMEROS-REPORT-END"
CONSOLE_MARKER = "EPHEMEROS-CLOUD-INIT"
KERNEL_ARGS = "root=/dev/vda rw console=ttyS0"

# Debian package of each host tool, for the message when one is missing.
BOOT_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "dnsmasq": "dnsmasq-base",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "ip": "iproute2",
    "apt-get": "apt",
    "gpg": "gpg",  # signs the local apt repository's indexes
}
BUILD_TOOLS = {
    "gpg": "gpg",
    "debootstrap": "debootstrap",
    "mkfs.ext4": "e2fsprogs",
    "chroot": "coreutils",
    "unshare": "util-linux",
}

# The guest program that reports cloud-init's outcome, and its unit: files under harness/templates.
GUEST = Templates(Path(__file__).parent / "templates")
REPORT_SCRIPT = GUEST.render("ephemeros-report", begin=REPORT_BEGIN, end=REPORT_END, marker=CONSOLE_MARKER)
REPORT_UNIT = GUEST.render("ephemeros-report.service")

INSTALL_SCRIPT = """set -eu
apt_get() { apt-get -q -y -o Dpkg::Options::=--force-unsafe-io "$@"; }
apt_get update
apt_get dist-upgrade
apt_get install --no-install-recommends "$@"
"""

FINALIZE_SCRIPT = """set -eu
systemctl enable ephemeros-report.service
apt-get clean
rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d /etc/resolv.conf
: > /etc/machine-id
"""


@dataclass(frozen=True)
class ImageRecipe:
    """Everything that goes into the image but the builder's code; the key, covering both, names its cache."""

    suite: str
    debootstrap: tuple[str, ...]
    packages: tuple[str, ...]
    files: tuple[tuple[str, int, str], ...]  # path in the image, mode, content: written after the install
    install_script: str  # run in the chroot with the packages as arguments, the host's mirror in sources.list
    finalize_script: str  # run in the chroot after the files are written
    disk_size: str

    @property
    def key(self) -> str:
        """A hash of the recipe and of the code that builds it."""
        builder = "".join(inspect.getsource(f) for f in (_private_mounts, _in_chroot, _build))
        text = json.dumps(asdict(self), sort_keys=True) + builder
        return hashlib.sha256(text.encode()).hexdigest()[:16]


RECIPE = ImageRecipe(
    suite="bookworm",
    debootstrap=("--variant=minbase", "--components=main"),
    packages=(
        "linux-image-amd64",
        "systemd-sysv",
        "udev",
        "cloud-init",
        "ifupdown",
        "isc-dhcp-client",
        "iproute2",
        "ca-certificates",
        "openssh-server",  # as on Vultr's image: the datastore's adminSources reach it, and tests log in with it
        "sudo",  # cloud-init's default user gets its rights through it
    ),
    files=(
        ("/etc/apt/sources.list", 0o644, apt_repo.sources_list(REPO_URL, "bookworm")),
        ("/etc/cloud/cloud.cfg.d/90-ephemeros-test.cfg", 0o644, "datasource_list: [ NoCloud, None ]\n"),
        ("/etc/default/locale", 0o644, "LANG=C.UTF-8\n"),
        ("/etc/fstab", 0o644, "/dev/vda / ext4 errors=remount-ro 0 1\n"),
        ("/etc/hostname", 0o644, "debian\n"),
        ("/etc/hosts", 0o644, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
        ("/usr/local/sbin/ephemeros-report", 0o755, REPORT_SCRIPT),
        ("/etc/systemd/system/ephemeros-report.service", 0o644, REPORT_UNIT),
    ),
    install_script=INSTALL_SCRIPT,
    finalize_script=FINALIZE_SCRIPT,
    disk_size="4G",
)


@dataclass(frozen=True)
class DebianImage:
    kernel: Path
    initrd: Path
    disk_template: Path  # raw ext4, read-only: boots use an overlay
    dpkg_status: Path  # the image's /var/lib/dpkg/status
    recipe: ImageRecipe


def require_tools(tools: Mapping[str, str]) -> None:
    """Fail with what to install when a host tool is missing."""
    if os.geteuid() != 0:
        raise RuntimeError("the Debian VM harness runs as root (network namespaces, debootstrap)")
    missing = {tool: package for tool, package in tools.items() if shutil.which(tool) is None}
    if not apt_repo.KEYRING.exists():
        missing[str(apt_repo.KEYRING)] = "debian-archive-keyring"
    if missing:
        raise RuntimeError(
            f"missing {', '.join(missing)}: install the Debian packages {' '.join(sorted(set(missing.values())))}"
        )


def image_dir(recipe: ImageRecipe) -> Path:
    return CACHE / f"debian-vm-{recipe.key}"


def _image_in(directory: Path, recipe: ImageRecipe) -> DebianImage:
    return DebianImage(
        directory / "vmlinuz", directory / "initrd.img", directory / "disk.img", directory / "dpkg-status", recipe
    )


def _run_logged(command: Sequence[str], log: Path, **kwargs: Any) -> None:
    with log.open("a") as output:
        output.write(f"$ {' '.join(command)}\n")
        output.flush()
        done = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, **kwargs)
    if done.returncode != 0:
        tail = log_tail(log.read_text(errors="replace"))
        raise RuntimeError(f"{command[0]} failed ({done.returncode}) building the Debian VM image:\n{tail}")


def _private_mounts(command: Sequence[str]) -> list[str]:
    """`command` in a mount namespace of its own: what it (or debootstrap) mounts goes away with it, even if killed."""
    return ["unshare", "--mount", "--propagation", "private", *command]


def _in_chroot(rootfs: Path, script: str, *args: str) -> list[str]:
    """`script` run by sh in the chroot with /proc and /sys (its /dev has the nodes debootstrap made)."""
    mount_and_enter = 'mount -t proc proc "$1/proc" && mount -t sysfs sysfs "$1/sys" && exec chroot "$@"'
    return _private_mounts(["/bin/sh", "-c", mount_and_enter, "sh", str(rootfs), "/bin/sh", "-c", script, "sh", *args])


def _build(recipe: ImageRecipe, work: Path) -> Path:
    rootfs, out, log = work / "rootfs", work / "image", work / "build.log"
    out.mkdir()
    mirrors = apt_repo.host_mirrors(recipe.suite)
    _run_logged(
        _private_mounts(["debootstrap", *recipe.debootstrap, recipe.suite, str(rootfs), mirrors[recipe.suite]]), log
    )
    (rootfs / "etc/apt/sources.list").write_text(
        "".join(f"deb {base} {suite} main\n" for suite, base in mirrors.items())
    )
    policy = rootfs / "usr/sbin/policy-rc.d"  # no service starts in the chroot
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
    env["DEBIAN_FRONTEND"] = "noninteractive"
    _run_logged(_in_chroot(rootfs, recipe.install_script, *recipe.packages), log, env=env)
    for path, mode, content in recipe.files:
        target = rootfs / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        target.chmod(mode)
    apt_repo.new_mirror_key(out / apt_repo.MIRROR_SIGNING_KEY, rootfs / apt_repo.MIRROR_KEY_IN_VM.lstrip("/"))
    _run_logged(_in_chroot(rootfs, recipe.finalize_script), log, env=env)
    image = _image_in(out, recipe)
    for pattern, target in (("vmlinuz-*", image.kernel), ("initrd.img-*", image.initrd)):
        found = sorted((rootfs / "boot").glob(pattern))
        if len(found) != 1:
            raise RuntimeError(f"the image has {len(found)} /boot/{pattern}, not one")
        shutil.copyfile(found[0], target)
    shutil.copyfile(rootfs / "var/lib/dpkg/status", image.dpkg_status)
    _run_logged(["mkfs.ext4", "-q", "-L", "root", "-d", str(rootfs), str(image.disk_template), recipe.disk_size], log)
    image.disk_template.chmod(0o444)
    (out / "recipe.json").write_text(json.dumps(asdict(recipe), indent=1))
    shutil.copyfile(log, out / "build.log")
    return out


def debian_image(recipe: ImageRecipe = RECIPE) -> DebianImage:
    """The image for `recipe`: built once (a few minutes), then found in the cache."""
    done = image_dir(recipe)

    def build(work: Path) -> Path:
        require_tools(BUILD_TOOLS)
        return _build(recipe, work)

    asset_cache.cached(done, build)
    return _image_in(done, recipe)


@dataclass(frozen=True)
class CloudInitResult:
    status: str  # from `cloud-init status --long`: done, error, running, ...
    errors: tuple[str, ...]  # /run/cloud-init/result.json's errors
    detail: str  # `cloud-init status --long`
    schema_valid: bool  # whether the user data passes `cloud-init schema --system` (it must be cloud-config)
    schema: str  # what that said
    log_problems: tuple[str, ...]  # WARNING and ERROR lines of /var/log/cloud-init.log
    output: str  # the end of /var/log/cloud-init-output.log
    packages: dict[str, str]  # installed package -> version
    not_installed: tuple[str, ...]  # of the packages the VM was to install
    missing_from_repo: tuple[str, ...]  # paths the VM asked the local apt repository for and did not get
    serial: str  # the end of the console log
    seconds: float  # from QEMU's start to the report

    @property
    def ok(self) -> bool:
        return self.status == "done" and not self.errors and not self.not_installed and self.schema_valid

    @property
    def apt_failed(self) -> bool:
        apt_errors = re.search(r"^(E: |W: Failed to fetch)", self.output, re.M)
        return bool(self.not_installed or self.missing_from_repo or apt_errors)

    def explain(self) -> str:
        """What went wrong, apt first: when it fails, later modules' errors often only follow from it."""
        parts = [f"cloud-init status {self.status!r} {self.seconds:.0f} s after QEMU started"]
        if self.apt_failed:
            apt_lines = [line for line in self.output.splitlines() if re.match(r"(E|W): ", line)]
            parts.append(
                "apt failed in the VM (later modules' errors may only follow from it):\n"
                f"  not installed: {' '.join(self.not_installed) or '-'}\n"
                f"  not in the local repository: {' '.join(self.missing_from_repo) or '-'}\n"
                + "".join(f"  {line}\n" for line in apt_lines[-20:])
            )
        if self.errors:
            parts.append("cloud-init errors:\n" + "".join(f"  {e}\n" for e in self.errors))
        if not self.schema_valid:
            parts.append(f"the user data fails cloud-init's schema:\n{self.schema}")
        if self.log_problems:
            parts.append("cloud-init.log problems:\n" + "".join(f"  {p}\n" for p in self.log_problems[-30:]))
        parts.append(f"cloud-init status --long:\n{self.detail}")
        parts.append("cloud-init-output.log (end):\n" + log_tail(self.output, 60))
        parts.append("console (end):\n" + self.serial)
        return "\n".join(parts)


def parse_report(text: str) -> dict[str, Any] | None:
    """The report the image's ephemeros-report unit wrote on the second serial port, once it is all there."""
    match = re.search(rf"{REPORT_BEGIN}\s+([A-Za-z0-9+/=\s]+?)\s*{REPORT_END}", text)
    if not match:
        return None
    report: dict[str, Any] = json.loads(base64.b64decode("".join(match.group(1).split())))
    return report


@dataclass
class DebianVM:
    """A running VM, reachable at `address` from commands run in its namespace `netns`."""

    address: str
    hostname: str
    network: Network
    workdir: Path
    qemu: subprocess.Popen[bytes]
    repo: apt_repo.RepoServer
    packages: tuple[str, ...]
    started: float = field(default_factory=time.monotonic)
    _result: CloudInitResult | None = None

    @property
    def netns(self) -> str:
        return self.network.name

    def run(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run `cmd` in the VM's network namespace (output captured as text unless told otherwise)."""
        return self.network.run(cmd, **kwargs)

    def serial_log(self) -> str:
        path = self.workdir / "console.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _check_running(self) -> None:
        if self.qemu.poll() is not None:
            errors = (self.workdir / "qemu.log").read_text(errors="replace")
            raise RuntimeError(
                f"QEMU exited ({self.qemu.returncode}): {errors}\nconsole:\n{log_tail(self.serial_log(), 40)}"
            )

    def wait_for_cloud_init(self, timeout: float = 900) -> CloudInitResult:
        """cloud-init's outcome once cloud-final is over; TimeoutError without it `timeout` s after QEMU started."""
        report_log = self.workdir / "report.log"
        deadline = self.started + timeout
        while self._result is None:
            report = parse_report(report_log.read_text(errors="replace")) if report_log.exists() else None
            if report is not None:
                self._result = self._result_from(report)
                break
            self._check_running()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no cloud-init report {timeout:.0f} s after QEMU started; not in the local repository: "
                    f"{self.repo.missing() or '-'}\nconsole:\n{log_tail(self.serial_log(), 60)}"
                )
            time.sleep(1)
        return self._result

    def _result_from(self, report: dict[str, Any]) -> CloudInitResult:
        status = re.search(r"^status: (\S+)", report["status"], re.M)
        result = json.loads(report["result"]) if report["result"].strip() else {}
        packages = {}
        for line in report["packages"].splitlines():
            state, _, rest = line.partition("\t")
            name, _, version = rest.partition("\t")
            if state.startswith("ii"):
                packages[name] = version
        return CloudInitResult(
            status=status.group(1) if status else "unknown",
            errors=tuple(str(e) for e in result.get("v1", {}).get("errors", ["no /run/cloud-init/result.json"])),
            detail=report["status"],
            schema_valid=report["schema"]["valid"],
            schema=report["schema"]["output"],
            log_problems=tuple(report["log_problems"]),
            output=report["output"],
            packages=packages,
            not_installed=tuple(p for p in self.packages if p not in packages),
            missing_from_repo=tuple(self.repo.missing()),
            serial=log_tail(self.serial_log(), 60),
            seconds=time.monotonic() - self.started,
        )

    def wait_for_port(self, port: int, timeout: float = 300) -> float:
        """Wait until the VM accepts TCP connections on `port`, tried from the namespace; returns the seconds."""
        probe = """import socket, sys, time
deadline = time.monotonic() + float(sys.argv[3])
while True:
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.5)
"""
        began = time.monotonic()
        done = self.run([sys.executable, "-c", probe, self.address, str(port), str(timeout)])
        if done.returncode != 0:
            self._check_running()
            raise TimeoutError(
                f"{self.address}:{port} accepted no connection within {timeout:.0f} s\n"
                f"console:\n{log_tail(self.serial_log(), 60)}"
            )
        return time.monotonic() - began


def _seed(directory: Path, user_data: str, meta_data: str) -> Path:
    """A NoCloud seed: a FAT volume labelled CIDATA with user-data and meta-data."""
    directory.mkdir()
    (directory / "user-data").write_text(user_data)
    (directory / "meta-data").write_text(meta_data)
    seed = directory.parent / "seed.img"
    subprocess.run(["mkfs.vfat", "-n", "CIDATA", "-C", str(seed), "8192"], check=True, capture_output=True)
    subprocess.run(
        ["mcopy", "-i", str(seed), str(directory / "user-data"), str(directory / "meta-data"), "::"],
        check=True,
        capture_output=True,
    )
    return seed


@contextmanager
def debian_vm(
    user_data: str,
    *,
    packages: Sequence[str],
    address: str | None = None,
    hostname: str = "datastore",
    hosts: Mapping[str, str] | None = None,
    vcpus: int = 2,
    memory_mib: int = 2048,
) -> Iterator[DebianVM]:
    """Boot the image with `user_data` in a namespace of its own; `packages` are those the user data installs.

    `hosts` (name -> address) resolve both in the namespace and in the VM, as does `hostname` to the VM.
    Everything is torn down on exit, whatever happened.
    """
    require_tools(BOOT_TOOLS)
    address = address or DEFAULT_ADDRESS
    if IPv4Address(address) not in BRIDGE.network or address in (str(BRIDGE.ip), str(BRIDGE.network[-1])):
        raise ValueError(f"{address} is not a VM address in {BRIDGE.network}")
    image = debian_image()
    repo = apt_repo.local_apt_repo(
        packages,
        codename=image.recipe.suite,
        image_key=image.recipe.key,
        dpkg_status=image.dpkg_status,
        image_dir=image.disk_template.parent,
    )
    names = {hostname: address, **(hosts or {})}
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="ephemeros-vm-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        network = stack.enter_context(network_namespace(BRIDGE, names))
        stack.enter_context(dnsmasq(network, workdir / "dnsmasq", [Lease(MAC, address, hostname)], names))
        server = stack.enter_context(apt_repo.serve_repo(repo, network, workdir))
        overlay = workdir / "disk.qcow2"
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.disk_template), "-F", "raw", str(overlay)],
            check=True,
        )
        seed = _seed(workdir / "seed", user_data, f"instance-id: {uuid.uuid4()}\nlocal-hostname: {hostname}\n")
        network.add_tap("tap0")
        command = [
            "qemu-system-x86_64",
            "-machine", "q35", "-accel", "tcg",
            "-smp", str(vcpus), "-m", str(memory_mib),
            "-nodefaults", "-display", "none", "-no-reboot",
            "-serial", f"file:{workdir / 'console.log'}",
            "-serial", f"file:{workdir / 'report.log'}",
            "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", KERNEL_ARGS,
            "-drive", f"if=virtio,format=qcow2,file={overlay}",
            "-drive", f"if=virtio,format=raw,readonly=on,file={seed}",
            "-netdev", "tap,id=net0,ifname=tap0,script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=net0,mac={MAC},romfile=",
        ]  # fmt: skip
        with (workdir / "qemu.log").open("w") as qemu_log:
            qemu = network.popen(command, stdout=qemu_log, stderr=subprocess.STDOUT)
        stack.callback(stop, qemu)
        yield DebianVM(address, hostname, network, workdir, qemu, server, tuple(packages))
