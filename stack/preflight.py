"""Pre-flight checks of the machine that runs Pulumi, before any resource is declared: the boot programs sticks are
built from, the programs nodes download (the DNS updater, the etcd rejoin), the user's snippets (ignition-validate),
every stick device the stack names (so that `pulumi preview` already shows a device that would be refused), and,
with kubernetes.manage, that the Kubernetes provider plugin is installed and the cluster's API answers. Each problem
names its key; all are reported at once."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from base import stick_layout as B
from base.build_layout import BuildDir
from base.node_layout import K3S_API_PORT
from base.problems import Problems
from bootmedia.bootloader import BootFiles, BootloaderError, check_bootloader
from bootmedia.device import DeviceRefused, System, check_target
from settings import NAMESPACE
from settings.dns_plan import needs_dns_updater
from settings.model import Settings
from stack.snippet_checks import snippet_problems

OPERATION = "EPHEMEROS_OPERATION"  # `make refresh` and `make destroy` set it to refresh or destroy


def only_reads_or_deletes(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this run of the program is a refresh's or a destroy's (told by the Makefile: Pulumi does not tell the
    program), which makes nothing: its checks of what making needs are skipped."""
    return environ.get(OPERATION) in ("refresh", "destroy")


class PreflightError(Problems):
    """This machine, or a service the stack uses, cannot run the stack as configured; the message lists every
    problem, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the stack cannot run as configured, here or at its services: {count} problem(s)", problems)


@dataclass(frozen=True)
class Machine:
    """What the checks found: the boot programs, the programs nodes download when they need them, and what works
    but should be known."""

    boot_files: BootFiles
    dns_updater: Path | None
    etcd_rejoin: Path | None = None
    warnings: tuple[str, ...] = ()


def sticks_without_served_boot_script(settings: Settings, build_dir: BuildDir) -> list[str]:
    """Stick images made before boot scripts were served (an image, but no boot script beside the Ignition)."""
    old = [
        node.hostname
        for node in settings.nodes
        if build_dir.stick_image(node.hostname).exists() and not build_dir.boot_script(node.hostname).exists()
    ]
    if not old:
        return []
    return [
        f"the sticks of {', '.join(old)} were made by an older ephemeros, whose sticks carry the Flatcar version and "
        "kernel arguments themselves: pulumi up makes new images that only chain the node's boot script served at "
        "ignitionBaseUrl, so that those settings reach the node at its next boot. Write each of these sticks once "
        "more (nodes[i].stick, or dd); until then a node boots what its old stick says"
    ]


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


KUBERNETES_PLUGIN = "pulumi-resource-kubernetes"


def kubernetes_plugin(environ: Mapping[str, str] = os.environ) -> str | None:
    """With kubernetes.manage, the engine needs the Kubernetes provider plugin of the pulumi-kubernetes version the
    venv has: a problem naming the install command if the engine would not find it (where it looks: its plugin
    directory under PULUMI_HOME, or PATH unless PULUMI_IGNORE_AMBIENT_PLUGINS is set), rather than the engine's
    "no resource plugin" error halfway through a preview."""
    version = importlib.metadata.version("pulumi_kubernetes")
    home = Path(environ.get("PULUMI_HOME") or Path.home() / ".pulumi")
    installed = home / "plugins" / f"resource-kubernetes-v{version}"
    if (installed / KUBERNETES_PLUGIN).is_file() and not installed.with_name(f"{installed.name}.partial").exists():
        return None
    if not environ.get("PULUMI_IGNORE_AMBIENT_PLUGINS") and shutil.which(KUBERNETES_PLUGIN, path=environ.get("PATH")):
        return None
    return (
        f"{NAMESPACE}:kubernetes.manage: Pulumi applies the add-ons through the Kubernetes provider plugin "
        f"v{version}, which is not installed here ({installed} does not hold it): install it with "
        f"`pulumi plugin install resource kubernetes v{version}` (from a mirror: add --server <URL>), or set "
        "kubernetes.manage to false to let k3s install the add-ons"
    )


def check_machine(
    settings: Settings,
    project_dir: Path,
    build_dir: BuildDir,
    system: System | None = None,
    api_port: int = K3S_API_PORT,
    service_problems: Collection[str] = (),
    environ: Mapping[str, str] = os.environ,
) -> Machine:
    """Run every check (`environ`: where the engine looks for plugins); raises PreflightError listing all problems,
    the services' (stack.services) among them. A run that only reads or deletes (`refresh`, `destroy`: see
    `only_reads_or_deletes`) checks only what declaring the resources needs: an unplugged stick or a cluster that
    is down must not keep a stack from being refreshed or destroyed."""
    problems: list[str] = list(service_problems)
    making = not only_reads_or_deletes(environ)
    if making and settings.kubernetes.manage:
        missing = kubernetes_plugin(environ)
        unreachable = check_kubernetes_api(settings.api_server, api_port)
        problems += [p for p in (missing, unreachable) if p]
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
    problems += snippet_problems(settings) if making else []
    for i, node in enumerate(settings.nodes):
        if node.stick is None or not making:
            continue
        try:
            check_target(Path(node.stick.device), B.IMAGE_SIZE, system or System())
        except DeviceRefused as error:
            problems.append(f"{NAMESPACE}:nodes[{i}].stick.device (node {node.hostname}): {error}")
    if problems or boot_files is None:
        raise PreflightError(problems)
    return Machine(boot_files, updater, rejoin, tuple(sticks_without_served_boot_script(settings, build_dir)))
