"""The boot partition's text files: the iPXE script and syslinux's configuration. Pure."""

from __future__ import annotations

from pathlib import Path

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


def boot_script(settings: Settings, node: Node) -> str:
    return TEMPLATES.render(
        "autoexec.ipxe",
        hostname=node.hostname,
        cluster=settings.cluster_name,
        version=settings.flatcar.version,
        release_url=settings.flatcar.release_url,
        kernel=B.FLATCAR_KERNEL,
        initrd=B.FLATCAR_INITRD,
        kernel_args=" ".join(kernel_args(settings, node)),
    )


def syslinux_config() -> str:
    return TEMPLATES.render("syslinux.cfg", bios_ipxe=B.BIOS_IPXE, boot_script=B.BOOT_SCRIPT)
