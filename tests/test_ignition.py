"""The public Ignition: accepted by Debian's ignition-validate, applied by the real ignition binary, secret-free."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from base import node_layout as L
from harness import ignition_tools
from harness.k3s_mirror import K3sMirror
from harness.stack import SECRET_VALUES, base_settings, full_settings, node_named, secret_keys, stack_settings, to_raw
from ignition.render import node_config, to_ignition, to_json
from settings import LoadedSettings, load_settings
from settings.node_plan import node_plan

K3S_VERSION = "v1.36.4+k3s1"


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    ignition_tools.require_tools()


def load(doc: dict[str, Any], secret: Collection[str] = ()) -> LoadedSettings:
    return load_settings(to_raw(doc), secret_keys(set(secret)))


def render_to(loaded: LoadedSettings, hostname: str, directory: Path) -> Path:
    path = directory / f"{hostname}.ign"
    node = node_named(loaded.settings, hostname)
    config = to_ignition(node_config(loaded.settings, node_plan(loaded.settings, node, loaded.credentials)))
    path.write_text(to_json(config))
    return path


def unit_text(root: Path, name: str) -> str:
    return (root / "etc/systemd/system" / name).read_text()


DEV = stack_settings("dev")
DEV_HOSTS = [n["hostname"] for n in DEV["nodes"]]
FULL, FULL_SECRET = full_settings()
FULL_HOSTS = [n["hostname"] for n in FULL["nodes"]]


@pytest.mark.parametrize("hostname", DEV_HOSTS)
def test_dev_stack_configs_pass_ignition_validate(hostname: str, tmp_path: Path) -> None:
    done = ignition_tools.validate(render_to(load(DEV), hostname, tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == ""  # no warnings either


@pytest.mark.parametrize("hostname", FULL_HOSTS)
def test_full_feature_configs_pass_ignition_validate(hostname: str, tmp_path: Path) -> None:
    done = ignition_tools.validate(render_to(load(FULL, FULL_SECRET), hostname, tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == ""


@pytest.mark.parametrize("hostname", DEV_HOSTS)
def test_ignition_applies_dev_stack_config(
    hostname: str, tmp_path: Path, world_readable_tmp: Path, k3s_mirror: K3sMirror
) -> None:
    loaded = load(k3s_mirror.serving(DEV))
    node = node_named(loaded.settings, hostname)
    applied = ignition_tools.apply(render_to(loaded, hostname, tmp_path), world_readable_tmp)
    assert applied.returncode == 0, applied.log
    root = applied.root

    assert (root / "etc/hostname").read_text() == f"{hostname}\n"
    k3s = root / L.K3S_BINARY.lstrip("/")
    assert k3s.read_bytes() == k3s_mirror.binary
    assert k3s.stat().st_mode & 0o7777 == 0o755
    assert f"/{K3S_VERSION.replace('+', '%2B')}/k3s" in k3s_mirror.requests[-1]
    for name in L.K3S_LINKS:
        assert os.readlink(root / L.OPT_BIN.lstrip("/") / name) == L.K3S_BINARY

    config_file = root / L.K3S_CONFIG.lstrip("/")
    assert config_file.stat().st_mode & 0o7777 == 0o600
    k3s_config = yaml.safe_load(config_file.read_text())
    assert k3s_config["node-name"] == hostname
    if node.role == "server":
        assert "server" not in k3s_config
        assert "node0.dev.ephemeros.test" in k3s_config["tls-san"]
        assert k3s_config["cluster-cidr"] == "10.42.0.0/16"
    else:
        assert k3s_config["server"] == "https://node0.dev.ephemeros.test:6443"
        assert k3s_config["node-label"] == ["ephemeros.io/pool=general"]

    passwd = (root / "etc/passwd").read_text().splitlines()
    assert any(line.startswith("core:x:") for line in passwd)
    keys = (root / "home/core/.ssh/authorized_keys.d/ignition").read_text()
    assert DEV["sshKeys"][0] in keys

    presets = (root / "etc/systemd/system-preset/20-ignition.preset").read_text().splitlines()
    assert f"enable {L.SECRETS_MOUNT_UNIT}" in presets
    assert f"enable {L.K3S_UNIT}" in presets
    for masked in ("update-engine.service", "locksmithd.service"):
        assert os.readlink(root / "etc/systemd/system" / masked) == "/dev/null"

    mount = unit_text(root, L.SECRETS_MOUNT_UNIT)
    assert f"What=/dev/disk/by-label/{L.SECRETS_LABEL}" in mount
    assert f"Where={L.SECRETS_DIR}" in mount
    assert "Options=ro," in mount
    assert "DirectoryMode=0700" in mount
    service = unit_text(root, L.K3S_UNIT)
    assert f"ExecStart={L.K3S_BINARY} {node.role} --config {L.K3S_CONFIG}" in service
    assert f"EnvironmentFile={L.SECRETS_DIR}/{L.K3S_ENV}" in service
    assert f"RequiresMountsFor={L.SECRETS_DIR}" in service
    assert service.index(f"install -D -m 0600 {L.SECRETS_DIR}/{L.NODE_PASSWORD} {L.K3S_NODE_PASSWORD}") < service.index(
        "ExecStart="
    )
    assert "Restart=always" in service
    assert "StartLimitIntervalSec=0" in service
    assert not (root / "etc/systemd/system" / L.HEARTBEAT_TIMER).exists()  # dev stack has no heartbeat

    pki_unit = root / "etc/systemd/system" / L.SERVER_FILES_UNIT
    assert pki_unit.exists() == (node.role == "server")  # the cluster's CAs: servers only
    if node.role == "server":
        assert f"enable {L.SERVER_FILES_UNIT}" in presets
        assert f"Before={L.K3S_UNIT}" in pki_unit.read_text()
        script = (root / L.SERVER_FILES_SCRIPT.lstrip("/")).read_text()
        for name, path in L.pki_files().items():
            mode = "0600" if path.endswith(".key") else "0644"
            assert f'install -D -m {mode} {L.SECRETS_DIR}/{name} "$target/{path}"' in script


def test_ignition_applies_every_feature(tmp_path: Path, world_readable_tmp: Path, k3s_mirror: K3sMirror) -> None:
    loaded = load(k3s_mirror.serving(FULL), FULL_SECRET)
    applied = ignition_tools.apply(render_to(loaded, "node0", tmp_path), world_readable_tmp)
    assert applied.returncode == 0, applied.log
    root = applied.root

    service = unit_text(root, L.K3S_UNIT)
    assert f"EnvironmentFile={L.SECRETS_DIR}/{L.DATASTORE_ENV}" in service
    k3s_config = yaml.safe_load((root / L.K3S_CONFIG.lstrip("/")).read_text())
    assert k3s_config["node-ip"] == "192.168.50.10"
    assert "192.168.50.10" in k3s_config["tls-san"]
    assert "cluster-init" not in k3s_config  # postgres, not etcd

    network = root / L.NETWORK_DIR.lstrip("/")
    netdev = (network / "00-ephemeros-bond.netdev").read_text()
    assert "Kind=bond" in netdev
    assert "Mode=802.3ad" in netdev
    assert "Name=eno1 eno2" in (network / "00-ephemeros-bond-members.network").read_text()
    main = (network / "10-ephemeros.network").read_text()
    assert "Name=bond0" in main
    assert "Address=192.168.50.10/24" in main
    assert "Gateway=192.168.50.1" in main

    presets = (root / "etc/systemd/system-preset/20-ignition.preset").read_text().splitlines()
    for unit in (L.LOG_EXPORT_UNIT, L.HEARTBEAT_TIMER, L.DDNS_TIMER):
        assert f"enable {unit}" in presets
    assert "OnUnitActiveSec=300s" in unit_text(root, L.HEARTBEAT_TIMER)
    assert "--ssl --ssl-verify" in unit_text(root, L.LOG_EXPORT_UNIT)
    for script in (L.HEARTBEAT_SCRIPT, L.DDNS_SCRIPT):
        path = root / script.lstrip("/")
        assert path.stat().st_mode & 0o7777 == 0o755
        assert subprocess.run(["bash", "-n", str(path)], check=False).returncode == 0
    ddns = (root / L.DDNS_SCRIPT.lstrip("/")).read_text()
    assert '    namecheap "node0.lab"\n' in ddns
    assert 'if healthy_server; then\n    namecheap "primary.lab"\nfi' in ddns


def test_units_pass_systemd_analyze_verify(tmp_path: Path, world_readable_tmp: Path, k3s_mirror: K3sMirror) -> None:
    loaded = load(k3s_mirror.serving(FULL), FULL_SECRET)
    applied = ignition_tools.apply(render_to(loaded, "node0", tmp_path), world_readable_tmp)
    assert applied.returncode == 0, applied.log
    units = [p for p in (applied.root / "etc/systemd/system").iterdir() if not p.is_symlink()]
    assert len(units) == 8
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, units)], capture_output=True, text=True, check=False
    )
    # Executables live in the node's root, not this machine's; anything else would be a unit file mistake.
    problems = [line for line in done.stderr.splitlines() if "is not executable" not in line]
    assert problems == []


def test_a_wrong_k3s_checksum_makes_ignition_fail(
    tmp_path: Path, world_readable_tmp: Path, k3s_mirror: K3sMirror
) -> None:
    wrong = hashlib.sha256(b"not the binary").hexdigest()
    loaded = load(k3s_mirror.serving(DEV, sha256=wrong))
    applied = ignition_tools.apply(render_to(loaded, "node1", tmp_path), world_readable_tmp)
    assert applied.returncode != 0
    assert "hash" in applied.log.lower()
    assert not (applied.root / L.K3S_BINARY.lstrip("/")).exists()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def decoded_payloads(config_json: str) -> list[str]:
    """Every string in the config, with data: URLs decoded (percent-encoded or base64)."""
    payloads = []
    for text in _strings(json.loads(config_json)):
        payloads.append(text)
        if text.startswith("data:"):
            meta, _, data = text[5:].partition(",")
            payloads.append(base64.b64decode(data).decode() if meta.endswith(";base64") else unquote(data))
    return payloads


@pytest.mark.parametrize("hostname", FULL_HOSTS)
def test_no_secret_in_the_public_ignition(hostname: str, tmp_path: Path) -> None:
    loaded = load(FULL, FULL_SECRET)
    text = render_to(loaded, hostname, tmp_path).read_text()
    payloads = decoded_payloads(text)
    assert any("ExecStart=" in p for p in payloads)  # the decoding found the unit files
    secrets = [*SECRET_VALUES.values(), *FULL["heartbeatUrls"].values()]
    for secret in secrets:
        for piece in (secret, secret.split("://")[-1]):
            assert piece not in text
            assert not any(piece in p for p in payloads), f"a credential is in {hostname}'s public Ignition"


def etcd_stack() -> dict[str, Any]:
    doc = base_settings()
    doc["nodes"] = [
        {"hostname": "s0", "role": "server", "address": "192.168.50.10/24"},
        {"hostname": "s1", "role": "server", "address": "192.168.50.11/24"},
        {"hostname": "s2", "role": "server"},
        {"hostname": "a0", "role": "agent"},
    ]
    doc["datastore"] = {"type": "etcd"}
    return doc


@pytest.mark.parametrize("hostname", ["s0", "s2", "a0"])
def test_servers_with_embedded_etcd_rejoin_before_k3s(hostname: str, tmp_path: Path) -> None:
    loaded = load(etcd_stack())
    node = node_named(loaded.settings, hostname)
    sha256 = "ab" * 32
    plan = node_plan(loaded.settings, node, loaded.credentials)
    config = to_ignition(node_config(loaded.settings, plan, etcd_rejoin_sha256=sha256))
    path = tmp_path / f"{hostname}.ign"
    path.write_text(to_json(config))
    done = ignition_tools.validate(path)
    assert done.returncode == 0, done.stdout + done.stderr
    files = {f["path"]: f for f in config["storage"]["files"]}
    k3s_config = yaml.safe_load(unquote(files[L.K3S_CONFIG]["contents"]["source"].removeprefix("data:,")))
    units = {u["name"]: u for u in config["systemd"]["units"]}
    if node.role == "agent":
        assert k3s_config["server"] == "https://s0.lab.ephemeros.test:6443"
        assert L.ETCD_REJOIN_UNIT not in units
        assert L.ETCD_REJOIN not in files
        return
    assert "server" not in k3s_config  # whom to join, or whether to start the cluster, is decided at each boot
    assert "cluster-init" not in k3s_config
    assert files[L.ETCD_REJOIN]["contents"] == {
        "source": f"https://ignition.ephemeros.test/lab/{L.ETCD_REJOIN_URL_PATH}",
        "verification": {"hash": f"sha256-{sha256}"},
    }
    unit = units[L.ETCD_REJOIN_UNIT]["contents"]
    peers = {"s0": "192.168.50.11,s2.lab.ephemeros.test", "s2": "192.168.50.10,192.168.50.11"}[hostname]
    assert f"-name {hostname} " in unit
    assert f"-peers {peers} " in unit
    assert ("-address 192.168.50.10" in unit) == (hostname == "s0")
    assert ("-may-init" in unit) == (hostname == "s0")  # only the first server may start a new cluster
    assert f"-dropin {L.ETCD_DROPIN}" in unit
    assert f"Before={L.K3S_UNIT}" in unit
    (tmp_path / L.ETCD_REJOIN_UNIT).write_text(unit)
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / L.ETCD_REJOIN_UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    # The programs and k3s's unit live in the node's root, not this machine's; anything else is a unit mistake.
    problems = [line for line in verify.stderr.splitlines() if "is not executable" not in line and "k3s" not in line]
    assert problems == []
