"""Coordinated reboots, on the node's side: the update check rendered into a node's Ignition runs for real (bash,
curl, sha256sum) against a loopback HTTP server that serves the node's config and boot script (bootmedia's, as
`pulumi up` writes them and `make serve` serves them), with the node's /proc and kured's sentinel in a scratch root.
It asks for a reboot when the served config or boot script differs from what the node booted, or when the node has
been up too long; it asks for nothing when nothing differs, and withdraws its own request when a change is undone."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from base import node_layout as L
from bootmedia.boot_script import boot_digest, served_boot_script
from harness.http_server import serve_directory
from harness.stack import base_settings, node_named, to_raw
from ignition.render import NodeConfig, config_digest, node_config, to_ignition, to_json
from settings import LoadedSettings, SettingsError, load_settings
from settings.credentials import Credentials
from settings.node_plan import node_plan

HOST = "node1"
DAY = 86400


def load(doc: dict[str, Any]) -> LoadedSettings:
    return load_settings(to_raw(doc), set())


@dataclass
class Lab:
    """The served directory of a stack whose ignitionBaseUrl is a loopback server, and one node's scratch root."""

    served: Path
    base_url: str
    root: Path
    requests: list[str]

    def settings(self, **changes: Any) -> dict[str, Any]:
        doc = base_settings()
        doc["ignitionBaseUrl"] = f"{self.base_url}/lab"
        doc["updates"] = {"maxUptimeDays": 30}
        doc.update(changes)
        return doc

    def config(self, doc: dict[str, Any]) -> NodeConfig:
        settings = load(doc).settings
        return node_config(settings, node_plan(settings, node_named(settings, HOST), Credentials()))

    def boot_script(self, doc: dict[str, Any]) -> str:
        """The boot script `pulumi up` writes for the node, which the node's stick chains."""
        settings = load(doc).settings
        return served_boot_script(settings, node_named(settings, HOST))

    def serve(self, config: NodeConfig, boot_script: str | None) -> None:
        (self.served / "lab" / L.config_name(HOST)).write_text(to_json(to_ignition(config)))
        script = self.served / "lab" / L.boot_script_name(HOST)
        if boot_script is None:
            script.unlink(missing_ok=True)
        else:
            script.write_text(boot_script)

    def boot(self, config: NodeConfig, boot_script: str | None, uptime: float = 600.5) -> None:
        """The node boots `config` through `boot_script` (None: from an old stick, without a served boot script)."""
        for path in (L.CONFIG_DIGEST, L.UPDATE_CHECK_SCRIPT):
            target = self.root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(config["files"][path]["text"])
        (self.root / "proc").mkdir(exist_ok=True)
        booted = f" {L.BOOT_DIGEST_ARG}={boot_digest(boot_script)}" if boot_script else ""
        (self.root / "proc/cmdline").write_text(f"initrd=flatcar_production_pxe_image.cpio.gz console=tty0{booted}\n")
        self.set_uptime(uptime)
        self.sentinel.unlink(missing_ok=True)  # tmpfs: gone with the reboot

    def set_uptime(self, seconds: float) -> None:
        (self.root / "proc/uptime").write_text(f"{seconds:.2f} {seconds * 1.9:.2f}\n")

    @property
    def sentinel(self) -> Path:
        return self.root / L.REBOOT_SENTINEL.lstrip("/")

    def check(self) -> subprocess.CompletedProcess[str]:
        script = self.root / L.UPDATE_CHECK_SCRIPT.lstrip("/")
        env = {**os.environ, "EPHEMEROS_ROOT": str(self.root)}
        return subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, check=False, timeout=120)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    served = tmp_path / "served"
    (served / "lab").mkdir(parents=True)
    with serve_directory(served) as (url, requests):
        yield Lab(served, url, tmp_path / "root", requests)


def test_a_node_that_runs_what_is_served_asks_for_nothing(lab: Lab) -> None:
    doc = lab.settings()
    config, script = lab.config(doc), lab.boot_script(doc)
    lab.serve(config, script)
    lab.boot(config, script)
    done = lab.check()
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"up to date: config {config_digest(config)[:12]}\n"
    assert not lab.sentinel.exists()
    assert lab.requests == [f"/lab/{L.config_name(HOST)}", f"/lab/{L.boot_script_name(HOST)}"]


def test_a_changed_config_asks_for_a_reboot_and_undoing_it_withdraws_the_request(lab: Lab) -> None:
    doc = lab.settings()
    booted, script = lab.config(doc), lab.boot_script(doc)
    lab.boot(booted, script)
    upgraded = lab.config({**doc, "k3s": {**doc["k3s"], "version": "v1.36.5+k3s1"}})
    assert config_digest(upgraded) != config_digest(booted)
    lab.serve(upgraded, script)
    done = lab.check()
    assert done.returncode == 0, done.stderr
    reason = f"config {config_digest(booted)[:12]} booted, {config_digest(upgraded)[:12]} served"
    assert lab.sentinel.read_text() == f"ephemeros-update-check: {reason}\n"
    assert done.stdout == f"reboot needed: {reason}\n"

    lab.serve(booted, script)  # the change undone before the node's turn came
    done = lab.check()
    assert done.returncode == 0, done.stderr
    assert not lab.sentinel.exists()
    assert done.stdout == "no reboot needed any more: the sentinel is removed\n"


def test_a_changed_boot_script_asks_for_a_reboot(lab: Lab) -> None:
    doc = lab.settings()
    config, booted = lab.config(doc), lab.boot_script(doc)
    # A kernel argument for every node: in the served boot script, not in the Ignition config.
    changed = {**doc, "flatcar": {"kernelArgs": ["console=ttyS0,115200n8", "console=tty0", "mitigations=off"]}}
    served = lab.boot_script(changed)
    assert lab.config(changed) == config
    lab.boot(config, booted)
    lab.serve(config, served)
    done = lab.check()
    assert done.returncode == 0, done.stderr
    reason = f"boot script {boot_digest(booted)[:12]} booted, {boot_digest(served)[:12]} served"
    assert lab.sentinel.read_text() == f"ephemeros-update-check: {reason}\n"


def test_a_config_that_needs_a_new_stick_waits_for_it(lab: Lab) -> None:
    """Turning on a feature whose secrets only a new stick carries (here: log export) changes the config too; the
    node does not ask for a reboot into it before its stick holds what it needs, and withdraws a request it made."""
    doc = lab.settings()
    script = lab.boot_script(doc)
    loaded = load(doc)
    node = node_named(loaded.settings, HOST)
    plan = node_plan(loaded.settings, node, loaded.credentials)
    carried = ["k3s.env", "node-password", "node.env"]
    booted = node_config(loaded.settings, plan, stick_files=carried)
    assert booted["files"][L.STICK_FILES]["text"] == "k3s.env\nnode-password\nnode.env\n"
    lab.boot(booted, script)
    for name in carried:
        (lab.root / L.SECRETS_DIR.lstrip("/") / name).parent.mkdir(parents=True, exist_ok=True)
        (lab.root / L.SECRETS_DIR.lstrip("/") / name).write_text("")
    lab.sentinel.parent.mkdir(parents=True, exist_ok=True)
    lab.sentinel.write_text("ephemeros-update-check: config 0123456789ab booted, ba9876543210 served\n")
    export = dataclasses.replace(plan, log_export=True)
    lab.serve(node_config(loaded.settings, export, stick_files=[*carried, L.LOG_EXPORT_ENV]), script)
    done = lab.check()
    assert done.returncode == 0, done.stderr
    waiting = "reboot needed, but not before this node's stick is written again: the config served needs"
    assert done.stdout.startswith(f"{waiting} {L.LOG_EXPORT_ENV} on it")
    assert not lab.sentinel.exists()  # its own earlier request withdrawn
    (lab.root / L.SECRETS_DIR.lstrip("/") / L.LOG_EXPORT_ENV).write_text("")  # the new stick, booted with
    done = lab.check()
    assert done.stdout.startswith("reboot needed: config")
    assert lab.sentinel.exists()


def test_a_node_up_too_long_asks_for_a_reboot(lab: Lab) -> None:
    doc = lab.settings()
    config, script = lab.config(doc), lab.boot_script(doc)
    lab.serve(config, script)
    lab.boot(config, script, uptime=30 * DAY - 1)
    assert lab.check().returncode == 0
    assert not lab.sentinel.exists()
    lab.set_uptime(30 * DAY + 0.5)
    done = lab.check()
    assert done.returncode == 0, done.stderr
    assert lab.sentinel.read_text() == "ephemeros-update-check: up 30 days, the most is 30\n"


def test_without_a_maximum_uptime_a_long_running_node_asks_for_nothing(lab: Lab) -> None:
    doc = lab.settings(updates={"maxUptimeDays": 0})
    config, script = lab.config(doc), lab.boot_script(doc)
    lab.serve(config, script)
    lab.boot(config, script, uptime=400 * DAY)
    assert lab.check().returncode == 0
    assert not lab.sentinel.exists()


def test_every_reason_is_given_together(lab: Lab) -> None:
    doc = lab.settings()
    booted, booted_script = lab.config(doc), lab.boot_script(doc)
    served = lab.config({**doc, "sshKeys": [*doc["sshKeys"], doc["sshKeys"][0].replace("test@", "other@")]})
    served_script = lab.boot_script({**doc, "flatcar": {"version": "4593.2.6"}})
    lab.boot(booted, booted_script, uptime=45 * DAY)
    lab.serve(served, served_script)
    assert lab.check().returncode == 0
    reasons = lab.sentinel.read_text().removeprefix("ephemeros-update-check: ").rstrip("\n").split("; ")
    assert [r.split(" ")[0] for r in reasons] == ["config", "boot", "up"]


def test_a_request_someone_else_made_is_kept(lab: Lab) -> None:
    doc = lab.settings()
    config, script = lab.config(doc), lab.boot_script(doc)
    lab.serve(config, script)
    lab.boot(config, script)
    lab.sentinel.parent.mkdir(parents=True, exist_ok=True)
    lab.sentinel.write_text("")  # e.g. `touch /var/run/reboot-required` by hand
    done = lab.check()
    assert done.returncode == 0
    assert lab.sentinel.exists()


def test_a_server_that_does_not_answer_changes_nothing(lab: Lab) -> None:
    doc = lab.settings()
    booted, script = lab.config(doc), lab.boot_script(doc)
    lab.boot(booted, script)
    lab.serve(lab.config({**doc, "k3s": {**doc["k3s"], "version": "v1.36.5+k3s1"}}), script)
    assert lab.check().returncode == 0
    request = lab.sentinel.read_text()

    (lab.served / "lab" / L.config_name(HOST)).unlink()  # 404
    done = lab.check()
    assert done.returncode != 0
    assert f"cannot fetch {lab.base_url}/lab/{L.config_name(HOST)}: nothing compared, nothing changed" in done.stderr
    assert lab.sentinel.read_text() == request

    lab.serve(booted, script)
    (lab.served / "lab" / L.boot_script_name(HOST)).unlink()
    done = lab.check()
    assert done.returncode != 0
    assert lab.sentinel.read_text() == request  # the config alone would have withdrawn it


def test_a_served_file_that_is_not_a_config_changes_nothing(lab: Lab) -> None:
    doc = lab.settings()
    config, script = lab.config(doc), lab.boot_script(doc)
    lab.boot(config, script)
    lab.serve(config, script)
    (lab.served / "lab" / L.config_name(HOST)).write_text("<html>maintenance</html>\n")
    done = lab.check()
    assert done.returncode != 0
    assert "holds no /etc/ephemeros/config-digest" in done.stderr
    assert not lab.sentinel.exists()


def test_a_node_booted_from_an_old_stick_compares_its_config_only(lab: Lab) -> None:
    doc = lab.settings()
    config = lab.config(doc)
    lab.serve(config, lab.boot_script(doc))
    lab.boot(config, boot_script=None)
    done = lab.check()
    assert done.returncode == 0, done.stderr
    assert "booted without ephemeros.boot=" in done.stderr
    assert not lab.sentinel.exists()
    assert lab.requests == [f"/lab/{L.config_name(HOST)}"]


def test_the_check_runs_on_a_timer_and_kured_runs_on_the_servers(lab: Lab) -> None:
    doc = lab.settings(updates={"checkPeriod": 600})
    loaded = load(doc)
    for node in loaded.settings.nodes:
        config = node_config(loaded.settings, node_plan(loaded.settings, node, loaded.credentials))
        units, files = config["units"], config["files"]
        assert units[L.UPDATE_CHECK_TIMER]["enabled"] is True
        assert "OnUnitActiveSec=600s" in units[L.UPDATE_CHECK_TIMER]["text"]
        assert f"ExecStart={L.UPDATE_CHECK_SCRIPT}" in units[L.UPDATE_CHECK_UNIT]["text"]
        assert files[L.UPDATE_CHECK_SCRIPT]["mode"] == files[L.REBOOT_REQUIRED_SCRIPT]["mode"] == 0o755
        assert (L.KURED_MANIFEST in files) == (node.role == "server")
        for script in (L.UPDATE_CHECK_SCRIPT, L.REBOOT_REQUIRED_SCRIPT):
            syntax = subprocess.run(["bash", "-n"], input=files[script]["text"], text=True, check=False)
            assert syntax.returncode == 0
    off = load(base_settings()).settings
    config = node_config(off, node_plan(off, off.nodes[0], Credentials()))
    assert not {L.UPDATE_CHECK_SCRIPT, L.REBOOT_REQUIRED_SCRIPT, L.KURED_MANIFEST} & config["files"].keys()


IMAGES = (
    "mirror.lan:5000/kubereboot/kured:1.20.0",
    "ghcr.io/kubereboot/kured:1.20.0@sha256:" + "0a" * 32,
    "[fd00::5]:5000/mirrors/kured__daily:v1.20.0-rc.1",
    "localhost/kured",
)


@pytest.mark.parametrize("image", IMAGES)
def test_kured_and_kube_vip_run_the_image_as_written(image: str) -> None:
    """Each manifest holds the image reference as the settings give it (quoted: YAML reads it back unchanged)."""
    doc = base_settings()
    doc["updates"] = {"kured": {"image": image}}
    doc["kubeVip"] = {"interface": "eno1", "image": image.replace("kured", "kube-vip")}
    doc["apiServerAddress"] = "192.168.1.250"
    settings = load(doc).settings
    files = node_config(settings, node_plan(settings, settings.servers[0], Credentials()))["files"]
    for path, expected in ((L.KURED_MANIFEST, image), (L.KUBE_VIP_MANIFEST, image.replace("kured", "kube-vip"))):
        (daemonset,) = [d for d in yaml.safe_load_all(files[path]["text"]) if d["kind"] == "DaemonSet"]
        (container,) = daemonset["spec"]["template"]["spec"]["containers"]
        assert container["image"] == expected
        assert f'image: "{expected}"' in files[path]["text"]


@pytest.mark.parametrize(
    ("updates", "key", "hint"),
    [
        ({"window": {"start": "22:00", "end": "04:00"}}, "updates.window", "lies within one day"),
        ({"window": {"start": "25:00"}}, "updates.window.start", "HH:MM on a 24-hour clock"),
        ({"window": {"days": ["monday"]}}, "updates.window.days[0]", "'sun', 'mon'"),
        ({"window": {"days": []}}, "updates.window.days", "at least one"),
        ({"window": {"timeZone": "Europe Berlin"}}, "updates.window.timeZone", "Europe/Berlin"),
        ({"maxUptimeDays": 400}, "updates.maxUptimeDays", "certificates for 365 days"),
        ({"checkPeriod": 5}, "updates.checkPeriod", "greater than or equal to 60"),
        ({"kured": {"drainTimeout": -1}}, "updates.kured.drainTimeout", "greater than or equal to 0"),
        ({"kured": {"image": "ghcr.io/kubereboot/kured:1.20.0#x"}}, "updates.kured.image", "not an image reference"),
        ({"kured": {"image": "ghcr.io/kubereboot/Kured"}}, "updates.kured.image", "not an image reference"),
        ({"kured": {"image": "ghcr.io/kubereboot/kured@sha256:00"}}, "updates.kured.image", "<64 hex digits>"),
    ],
)
def test_bad_update_settings_fail_naming_their_key(updates: dict[str, Any], key: str, hint: str) -> None:
    doc = base_settings()
    doc["updates"] = updates
    with pytest.raises(SettingsError) as error:
        load(doc)
    assert f"ephemeros:{key}" in str(error.value)
    assert hint in str(error.value)


def test_updates_with_a_lone_sqlite_server_are_warned_about() -> None:
    doc = base_settings()
    doc["updates"] = {}
    assert any(w.startswith("updates: coordinated reboots reboot the only server") for w in load(doc).warnings)
    doc["datastore"] = {"type": "postgres"}
    doc["datastoreEndpoint"] = "postgres://k3s:pw@db.lab.test:5432/k3s"
    loaded = load_settings(to_raw(doc), {"ephemeros:datastoreEndpoint"})
    assert not any(w.startswith("updates:") for w in loaded.warnings)
