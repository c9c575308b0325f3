"""Coordinated reboots in a node's Ignition (settings.updates): the timer that compares what the node booted with
what is served for it and writes kured's sentinel, kured's sentinel command, and on servers kured's manifest."""

from __future__ import annotations

from collections.abc import Collection

from base import node_layout as L
from ignition.parts import MODE_CONFIG, MODE_EXECUTABLE, MODE_PRIVATE, File, Unit, render_template
from settings.model import Node, Settings

KURED_METRICS_PORT = 12080  # on the host's network (hostNetwork), away from the usual 8080


def kured_manifest(settings: Settings) -> str:
    """kured's objects, which k3s applies from every server's manifests."""
    updates = settings.updates
    if updates is None:
        raise ValueError("kured is deployed only with updates on")
    window, kured = updates.window, updates.kured
    return render_template(
        "manifests/kured.yaml",
        image=kured.image,
        period=kured.period,
        drain_timeout=kured.drain_timeout,
        lock_release_delay=kured.lock_release_delay,
        days=window.days,
        start=window.start,
        end=window.end,
        time_zone=window.time_zone,
        metrics_port=KURED_METRICS_PORT,
    )


def update_files(
    settings: Settings, node: Node, stick_files: Collection[str] = ()
) -> tuple[dict[str, File], dict[str, Unit]]:
    """The node's part in coordinated reboots, when updates are on. `stick_files`: the names of the files the config
    needs on the node's stick, which the check finds in the config served (a config that needs a new stick waits)."""
    updates = settings.updates
    if updates is None:
        return {}, {}
    check = render_template(
        "scripts/update-check.sh",
        config_url=settings.ignition_url(node),
        boot_url=settings.boot_script_url(node),
        max_uptime_days=updates.max_uptime_days,
        boot_arg=L.BOOT_DIGEST_ARG.replace(".", r"\."),
    )
    # A server holds its reboot back while another server is not Ready, the servers found at run time (see the
    # script), so that adding or removing a server changes no other node's config.
    guard = render_template("scripts/reboot-required.sh", server=node.role == "server", node_name=node.hostname)
    files: dict[str, File] = {
        L.UPDATE_CHECK_SCRIPT: {"mode": MODE_EXECUTABLE, "text": check},
        L.REBOOT_REQUIRED_SCRIPT: {"mode": MODE_EXECUTABLE, "text": guard},
    }
    if stick_files:
        files[L.STICK_FILES] = {"mode": MODE_CONFIG, "text": "".join(f"{name}\n" for name in sorted(stick_files))}
    if node.role == "server":
        files[L.KURED_MANIFEST] = {"mode": MODE_PRIVATE, "text": kured_manifest(settings)}
    units: dict[str, Unit] = {
        L.UPDATE_CHECK_UNIT: {"enabled": False, "text": render_template("units/update-check.service")},
        L.UPDATE_CHECK_TIMER: {
            "enabled": True,
            "text": render_template("units/update-check.timer", period=updates.check_period),
        },
    }
    return files, units
