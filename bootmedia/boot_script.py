"""A node's boot scripts. Pure.

Two iPXE scripts: the stick's own (`stick_boot_script`: DHCP, then chain the node's served script, retrying
forever), which changes only when the script's address does; and the served one (`served_boot_script`, public,
written by `pulumi up` next to the node's Ignition config), which names the Flatcar version, where its images are
and every kernel argument. So a new Flatcar, mirror or kernel argument reaches a node at its next boot, with the
same stick. Also syslinux's configuration, which starts iPXE on BIOS machines.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from base import node_layout as L
from base import stick_layout as B
from base.templating import Templates
from settings.model import Node, Settings

TEMPLATES = Templates(Path(__file__).parent / "templates")


def kernel_args(settings: Settings, node: Node) -> list[str]:
    """Flatcar's kernel command line: what PXE boot and Ignition need, then the stack's and the node's own."""
    return [
        f"initrd={B.FLATCAR_INITRD}",
        "flatcar.first_boot=1",
        f"ignition.config.url={settings.ignition_url(node)}",
        *settings.flatcar.kernel_args,
        *node.kernel_args,
    ]


def stick_boot_script(settings: Settings, node: Node) -> str:
    """The stick's autoexec.ipxe: it chains the node's served boot script."""
    return TEMPLATES.render(
        B.BOOT_SCRIPT,
        hostname=node.hostname,
        cluster=settings.cluster_name,
        boot_script_url=settings.boot_script_url(node),
    )


def _served(settings: Settings, node: Node, digest: str) -> str:
    args = [*kernel_args(settings, node), f"{L.BOOT_DIGEST_ARG}={digest}"]
    return TEMPLATES.render(
        "node.ipxe",
        hostname=node.hostname,
        cluster=settings.cluster_name,
        version=settings.flatcar.version,
        release_url=settings.flatcar.release_url,
        kernel=B.FLATCAR_KERNEL,
        initrd=B.FLATCAR_INITRD,
        kernel_args=" ".join(args),
    )


def served_boot_script(settings: Settings, node: Node) -> str:
    """The boot script served for `node`; its kernel command line carries the script's own digest (boot_digest), so
    that the booted node can tell which script it booted."""
    return _served(settings, node, hashlib.sha256(_served(settings, node, "").encode()).hexdigest())


def boot_digest(script: str) -> str:
    """The digest a node booted from the served `script` finds in its kernel command line: the sha256 of the
    script's text with that digest's own value left out."""
    marker = f" {L.BOOT_DIGEST_ARG}="
    head, found, tail = script.partition(marker)
    if not found:
        raise ValueError(f"not a served boot script: it has no {L.BOOT_DIGEST_ARG}= kernel argument")
    value = re.match(r"[0-9a-f]*", tail)
    return hashlib.sha256((head + marker + tail[value.end() if value else 0 :]).encode()).hexdigest()


def syslinux_config() -> str:
    return TEMPLATES.render("syslinux.cfg", bios_ipxe=B.BIOS_IPXE, boot_script=B.BOOT_SCRIPT)
