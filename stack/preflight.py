"""Pre-flight checks of the machine that runs Pulumi, before any resource is declared: the boot programs sticks are
built from, the programs nodes download (the DNS updater, the etcd rejoin), every stick device the stack names
(so that `pulumi preview` already shows a device that would be refused), and, with kubernetes.manage, that the
cluster's API answers. Each problem names its key; all are reported at once."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from base import stick_layout as B
from base.node_layout import K3S_API_PORT
from base.problems import Problems
from bootmedia.bootloader import BootFiles, BootloaderError, check_bootloader
from bootmedia.device import DeviceRefused, System, check_target
from settings import NAMESPACE
from settings.dns_plan import needs_dns_updater
from settings.model import Settings


class PreflightError(Problems):
    """This machine cannot run the stack as configured; the message lists every problem, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("this machine cannot run the stack as configured: {count} problem(s)", problems)


@dataclass(frozen=True)
class Machine:
    """What the checks found: the boot programs, and the programs nodes download when they need them."""

    boot_files: BootFiles
    dns_updater: Path | None
    etcd_rejoin: Path | None = None


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as program:
            return program.read(4) == b"\x7fELF"
    except OSError:  # unreadable: reported as missing or not a program
        return False


def _node_program(project_dir: Path, setting: str, path: str, source: str) -> Path:
    """A program nodes download (built by make from nodetools/<source>), named by `setting`."""
    program = project_dir / path
    if not program.is_file() or not _is_elf(program):
        raise PreflightError(
            [
                f"{NAMESPACE}:{setting}: {program} is missing or not a program: run `make up` (which builds it "
                f"from nodetools/{source}), or name a static x86_64 build of it"
            ]
        )
    return program


def check_dns_updater(settings: Settings, project_dir: Path) -> Path:
    """The RFC 2136 updater that nodes on DHCP download."""
    rfc2136 = settings.dns.rfc2136 if settings.dns is not None else None
    if rfc2136 is None:
        raise ValueError("only nodes that keep RFC 2136 records need the updater")
    return _node_program(project_dir, "dns.rfc2136.updater", rfc2136.updater, "dnsupdate")


API_TIMEOUT = 5.0  # seconds to wait for the cluster's API to accept a connection


def check_kubernetes_api(host: str, port: int) -> str | None:
    """With kubernetes.manage, Pulumi applies the add-ons through the cluster's API: a problem if it does not even
    accept a connection (refusing here, rather than planning the add-ons' deletion or failing halfway)."""
    try:
        with socket.create_connection((host, port), timeout=API_TIMEOUT):
            return None
    except OSError as error:
        return (
            f"{NAMESPACE}:kubernetes.manage: the cluster's API at {host}:{port} does not answer ({error}), and "
            "Pulumi applies the add-ons through it. For a new cluster: pulumi up with kubernetes.manage false (it "
            "makes the sticks), boot the servers, then set it to true. A cluster that is down keeps its add-ons: "
            "run pulumi up again once it answers"
        )


def check_machine(
    settings: Settings, project_dir: Path, system: System | None = None, api_port: int = K3S_API_PORT
) -> Machine:
    """Run every check; raises PreflightError listing all problems."""
    problems: list[str] = []
    if settings.kubernetes.manage:
        unreachable = check_kubernetes_api(settings.api_server, api_port)
        problems += [unreachable] if unreachable else []
    boot_files: BootFiles | None = None
    try:
        boot_files = check_bootloader(settings.bootloader, project_dir)
    except BootloaderError as error:
        problems += error.problems
    updater: Path | None = None
    if needs_dns_updater(settings):
        try:
            updater = check_dns_updater(settings, project_dir)
        except PreflightError as error:
            problems += error.problems
    rejoin: Path | None = None
    if settings.datastore.type == "etcd":
        try:
            rejoin = _node_program(project_dir, "datastore.etcdRejoin", settings.datastore.etcd_rejoin, "etcdrejoin")
        except PreflightError as error:
            problems += error.problems
    for i, node in enumerate(settings.nodes):
        if node.stick is None:
            continue
        try:
            check_target(Path(node.stick.device), B.IMAGE_SIZE, system or System())
        except DeviceRefused as error:
            problems.append(f"{NAMESPACE}:nodes[{i}].stick.device (node {node.hostname}): {error}")
    if problems or boot_files is None:
        raise PreflightError(problems)
    return Machine(boot_files, updater, rejoin)
