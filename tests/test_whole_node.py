"""A whole node, booted: stick -> iPXE -> kernel -> Ignition in the initramfs -> systemd -> the secrets mount -> the
node's units talking to real services; then a reboot into a changed config and another Flatcar release, with the
same stick, and a k3s that is not the one pinned.

A server and an agent of one stack, made by `pulumi up` under the real engine, boot from their stick images in QEMU
(the server under UEFI, the agent under BIOS, side by side; each boots twice in all) through their served boot
scripts into a Flatcar stand-in built from Debian packages (harness/flatcar_standin.py says what it is and how it
differs from Flatcar), served under Flatcar's PXE file names. Around them, on this machine's loopback (QEMU's user
network reaches it as 10.0.2.2): one HTTP server for the Flatcar mirror, the k3s mirror and what `pulumi up` serves
(boot scripts, Ignition configs, the DNS updater); the Healthchecks fake; a real BIND 9; a TLS endpoint for the
logs; the Vultr fake for the datastore.

k3s itself cannot be built here: the mirror serves the k3s stand-in (harness/k3s_standin.py) under k3s's name
and sha256. It runs where k3s would, after the secrets mount and the server's files, and reports on the node's
second serial port what k3s would be started with (digests only, never a secret), which the steps check.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
import yaml

from base import node_layout as L
from base import stick_layout as B
from harness import qemu
from harness.bind import Bind, bind_server
from harness.fakes.healthchecks import FakeHealthchecks
from harness.fakes.healthchecks import running as healthchecks_running
from harness.fakes.vultr import FakeVultr
from harness.fakes.vultr import running as vultr_running
from harness.flatcar_standin import FlatcarStandin, flatcar_standin, release
from harness.http_server import serve_directory
from harness.k3s_standin import K3sRecord, k3s_standin, records
from harness.processes import log_tail
from harness.pulumi_project import PulumiProject
from harness.stack import secret_keys, stack_settings, to_raw
from harness.tls_listener import TlsListener, tls_listener
from ignition.render import k3s_config
from settings import load_settings

# The first step also builds the stand-ins when their recipe is not cached (a few minutes), then boots both nodes.
pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.engine, pytest.mark.scenario, pytest.mark.timeout(1800)]

ZONE = "ephemeros.test"
DOMAIN = "dev.ephemeros.test"
LOG_HOST = "logs.ephemeros.test"  # the log endpoint's name, as a LAN's DNS would give it (here: /etc/hosts)
FLATCAR_VERSIONS = ("4593.2.5", "4593.3.0")  # two "releases" of the stand-in on the mirror
K3S_VERSION = "v1.36.4+k3s1"
GUEST_HOST = qemu.HOST_FROM_GUEST
NODES = {  # hostname -> firmware, the last byte of its address, MAC
    "node0": ("uefi", 15, "52:54:00:e0:00:00"),
    "node1": ("bios", 16, "52:54:00:e0:00:01"),
}
BOOT_TIMEOUT = 900  # seconds from a (re)start until the k3s stand-in reports: TCG, two machines, a shared CPU

T = TypeVar("T")


@dataclass
class World:
    project: PulumiProject
    settings: dict[str, Any]
    credentials: dict[str, str]  # set with `pulumi config set --secret`
    healthchecks: FakeHealthchecks
    bind: Bind
    logs: TlsListener
    mirror: Path
    requests: list[str]  # paths asked of the HTTP server, in order
    agents: list[tuple[str, str]]  # the same, each with who asked (its User-Agent)
    standin: FlatcarStandin
    k3s: Path
    vms: dict[str, qemu.StickVM]
    nodes: dict[str, Any]  # the `nodes` stack output of the config the nodes booted
    timings: dict[str, float] = field(default_factory=dict)
    served: dict[str, Any] = field(default_factory=dict)  # the `nodes` output of the changed config
    agent_reset: tuple[int, int, int] = (0, 0, 0)  # the agent's records and console length, and k3s downloads
    agent_reset_at: float = 0.0

    def asked_by(self, path: str, agent: str) -> int:
        """How often `path` was asked for by a client whose User-Agent starts with `agent`."""
        return sum(1 for asked, by in self.agents if asked == path and by.startswith(agent))

    def record(self, hostname: str, after: int = 0) -> K3sRecord:
        """The k3s stand-in's latest record from `hostname`, once it has made more than `after` of them."""
        vm = self.vms[hostname]
        found = wait_for(lambda: records(vm.reports())[after:], f"the k3s stand-in on {hostname}", [vm])
        return found[-1]

    def stick_files(self, hostname: str) -> dict[str, str]:
        return self.project.stick_secret_files()[f"dev-{hostname}-stick"]

    def successes(self, hostname: str) -> list[int]:
        """The indexes of `hostname`'s successful pings among its pings."""
        return [i for i, (kind, _) in enumerate(self.pings(hostname)) if kind == "success"]

    def pings(self, hostname: str) -> list[tuple[str, str]]:
        """(kind, body) of every ping of `hostname`'s check, in order."""
        check = self.healthchecks.check_named(f"{hostname}.{DOMAIN}")
        assert check is not None
        return [(kind, body) for uuid, kind, body in self.healthchecks.pings if uuid == check["uuid"]]


def wait_for(found: Callable[[], T], what: str, vms: list[qemu.StickVM], timeout: float = BOOT_TIMEOUT) -> T:
    """`found()` once it is truthy; a clear error with the machines' consoles when it is not within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = found()
        if result:
            return result
        for vm in vms:
            vm.check_running()
        if time.monotonic() > deadline:
            consoles = "\n".join(f"--- {vm.name} console:\n{log_tail(vm.console(), 80)}" for vm in vms)
            raise TimeoutError(f"no {what} within {timeout:.0f} s\n{consoles}")
        time.sleep(1)


def answers(bind: Bind, name: str, address: str) -> bool:
    return bind.dig(name) == [address]


def logged(logs: TlsListener, pattern: re.Pattern[str]) -> bool:
    return any(pattern.match(line) for line in logs.lines())


def console_line(vm: qemu.StickVM, offset: int, text: str) -> str:
    """The first line of `vm`'s console after `offset` that holds `text`, or ""."""
    return next((line for line in vm.console()[offset:].splitlines() if text in line), "")


def sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def env_values(text: str) -> dict[str, str]:
    """The values of an environment file as base/envfile.py writes it."""
    values = {}
    for line in text.splitlines():
        match = re.fullmatch(r'(\w+)="(.*)"', line)
        assert match, line
        values[match[1]] = re.sub(r"\\(.)", r"\1", match[2])
    return values


def stack_document(url: str, healthchecks: FakeHealthchecks, bind: Bind, vultr: FakeVultr, k3s: Path) -> dict[str, Any]:
    doc = stack_settings("dev")
    guest_url = url.replace("127.0.0.1", GUEST_HOST)
    doc["nodes"] = [
        {
            "hostname": "node0",
            "role": "server",
            "mac": NODES["node0"][2],
            "labels": {"ephemeros.io/zone": "a"},
            "taints": ["dedicated=control:NoSchedule"],
        },
        {"hostname": "node1", "role": "agent", "mac": NODES["node1"][2], "labels": {"ephemeros.io/pool": "general"}},
    ]
    doc["ignitionBaseUrl"] = f"{guest_url}/ignition"
    doc["flatcar"] = {"version": FLATCAR_VERSIONS[0], "baseUrl": f"{guest_url}/flatcar"}
    doc["k3s"] = {"version": K3S_VERSION, "sha256": sha256(k3s.read_bytes()), "baseUrl": f"{guest_url}/k3s"}
    doc["heartbeat"] = {"provider": "healthchecks", "apiUrl": healthchecks.url, "period": 60, "clusterCheck": True}
    doc["dns"] = {
        "rfc2136": {"server": GUEST_HOST, "port": bind.port, "zone": ZONE, "keyName": bind.key_name},
        "updatePeriod": 60,
    }
    doc["updates"] = {"checkPeriod": 60, "maxUptimeDays": 0}  # the nodes look at what is served every minute
    doc["datastore"] = {
        "type": "vultr",
        "vultr": {"region": "ams", "allowedSources": ["203.0.113.7/32"], "apiUrl": vultr.url, "waitForPostgres": False},
    }
    return doc


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    qemu.require_qemu()
    timings: dict[str, float] = {}
    began = time.monotonic()
    standin = flatcar_standin()
    k3s = k3s_standin()
    timings["stand-ins (0: from the cache)"] = standin.seconds
    with ExitStack() as stack:
        healthchecks = stack.enter_context(healthchecks_running(FakeHealthchecks()))
        account = healthchecks.add_project()
        healthchecks.ping_endpoint = f"http://{GUEST_HOST}:{urlsplit(healthchecks.url).port}/ping/"
        bind = stack.enter_context(bind_server(ZONE))
        logs = stack.enter_context(tls_listener(LOG_HOST))
        vultr = stack.enter_context(vultr_running(FakeVultr()))
        vultr_account = vultr.add_account()

        mirror = tmp_path_factory.mktemp("mirror")
        test_files = {  # the test's network, as a LAN would provide it: the log endpoint's name and CA
            "etc/hosts": f"127.0.0.1\tlocalhost\n{GUEST_HOST}\t{LOG_HOST}\n",
            "etc/ssl/certs/ca-certificates.crt": logs.ca.cert.decode(),
        }
        for version in FLATCAR_VERSIONS:
            release(standin, version, mirror / "flatcar", test_files)
        (mirror / "k3s" / K3S_VERSION).mkdir(parents=True)
        shutil.copyfile(k3s, mirror / "k3s" / K3S_VERSION / "k3s")
        agents: list[tuple[str, str]] = []
        url, requests = stack.enter_context(serve_directory(mirror, agents=agents))

        project = PulumiProject(tmp_path_factory.mktemp("engine") / "ephemeros", "node")
        # The node programs it publishes, copied: a rebuild elsewhere meanwhile must not change the served configs.
        nodetools = project.dir / ".tools/nodetools"
        shutil.copytree(nodetools.resolve(), nodetools.with_name("nodetools.copy"), symlinks=True)
        nodetools.unlink()
        nodetools.with_name("nodetools.copy").rename(nodetools)
        (mirror / "ignition").symlink_to(project.build_dir / "ignition")
        settings = stack_document(url, healthchecks, bind, vultr, k3s)
        project.init(settings)
        credentials = {
            "healthchecksApiKey": account.api_key,
            "dnsTsigSecret": bind.secret,
            "logExportTarget": f"{LOG_HOST}:{logs.port}",
            "vultrApiKey": vultr_account.api_key,
        }
        for key, value in credentials.items():
            project.set_secret(key, value)
        started = time.monotonic()
        project.run("up", "--yes")
        timings["pulumi up"] = time.monotonic() - started
        nodes = project.stack_output("nodes")

        vms = {}
        for hostname, (firmware, address, mac) in NODES.items():
            image = Path(nodes[hostname]["stickImage"])
            workdir = tmp_path_factory.mktemp(hostname)
            vms[hostname] = stack.enter_context(
                qemu.stick_vm(hostname, image, firmware, workdir, mac=mac, address_index=address)
            )
        timings["set-up before the machines"] = time.monotonic() - began
        yield World(
            project,
            settings,
            credentials,
            healthchecks,
            bind,
            logs,
            mirror,
            requests,
            agents,
            standin,
            k3s,
            vms,
            nodes,
            timings,
        )
        print("whole-node timings (s):", ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))


def ipxe_path(path: str) -> str:
    """`path` as the HTTP server logs it when iPXE or Ignition asks for it ('+' is %2B in a URL)."""
    return path.replace("+", "%2B")


K3S_PATH = ipxe_path(f"/k3s/{K3S_VERSION}/k3s")


def booted(nodes: dict[str, Any], hostname: str) -> str:
    """What `hostname`'s heartbeat says it booted, from the `nodes` output of the config it booted."""
    node = nodes[hostname]
    return (
        f"config {node['configDigest'][:12]}; boot {node['bootDigest'][:12]}; flatcar {node['flatcarVersion']}; "
        "k3s version stand-in"
    )


def test_both_nodes_boot_from_their_sticks_into_the_standin(world: World) -> None:
    vms = list(world.vms.values())
    pending = set(world.vms)
    while pending:
        wait_for(lambda: any(records(world.vms[h].reports()) for h in pending), "the k3s stand-in on a node", vms)
        for hostname in [h for h in pending if records(world.vms[h].reports())]:
            world.timings[f"{hostname} ({world.vms[hostname].firmware}) QEMU start to k3s"] = (
                time.monotonic() - world.vms[hostname].started
            )
            pending.discard(hostname)
    for hostname, vm in world.vms.items():
        record = world.record(hostname)
        node = world.nodes[hostname]
        world.timings[f"{hostname} kernel start to k3s"] = record.uptime
        assert record.hostname == hostname
        assert f"VERSION={FLATCAR_VERSIONS[0]}\n" in record.os_release
        _, usr_type, usr_options = record.mounts["/usr"].split()
        assert (usr_type, usr_options.split(",")[0]) == ("squashfs", "ro")  # read-only, as Flatcar's
        assert record.mounts["/"].split()[1] == "tmpfs"  # from RAM
        console = vm.console()
        assert f"ephemeros: fetching the boot script {node['bootScriptUrl']}" in console  # the stick's script
        assert f"ephemeros: downloading Flatcar {FLATCAR_VERSIONS[0]}" in console  # the served one
        command_line = next(line for line in console.splitlines() if "Command line:" in line).split()
        assert f"ignition.config.url={node['ignitionUrl']}" in command_line
        assert f"{L.BOOT_DIGEST_ARG}={node['bootDigest']}" in command_line
        assert "flatcar.first_boot=1" in command_line
    release_path = f"/flatcar/{FLATCAR_VERSIONS[0]}"
    assert world.requests.count(f"{release_path}/{B.FLATCAR_KERNEL}") == 2
    assert world.requests.count(f"{release_path}/{B.FLATCAR_INITRD}") == 2
    for hostname in world.vms:  # at boot; the nodes' update checks fetch them too, every minute, with curl
        assert world.asked_by(f"/ignition/{L.boot_script_name(hostname)}", "iPXE/") == 1
        assert world.asked_by(f"/ignition/{L.config_name(hostname)}", "Ignition/") == 1
    assert world.requests.count(K3S_PATH) == 2
    assert world.requests.count(f"/ignition/{L.DNS_UPDATER_URL_PATH}") == 2


def test_the_secrets_partition_is_mounted_read_only_from_the_stick_by_its_label(world: World) -> None:
    for hostname in world.vms:
        record = world.record(hostname)
        device, fstype, options = record.mounts[L.SECRETS_DIR].split()
        assert device == record.labels[L.SECRETS_LABEL]  # the stick's partition labelled secrets
        assert fstype == "ext4"
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(options.split(","))
        assert record.files[f"{L.SECRETS_DIR}/"]["mode"] == "0700"
        on_node = {path: f for path, f in record.files.items() if path.startswith(f"{L.SECRETS_DIR}/") and f["sha256"]}
        expected = {
            f"{L.SECRETS_DIR}/{name}": {"mode": "0600", "uid": 0, "gid": 0, "sha256": sha256(content)}
            for name, content in world.stick_files(hostname).items()
        }
        assert on_node == expected


def test_the_server_has_the_cluster_cas_in_place_with_their_modes(world: World) -> None:
    stick = world.stick_files("node0")
    record = world.record("node0")
    for name, path in L.pki_files().items():
        mode = "0600" if path.endswith(".key") else "0644"
        assert record.files[f"{L.K3S_TLS_DIR}/{path}"] == {
            "mode": mode,
            "uid": 0,
            "gid": 0,
            "sha256": sha256(stick[name]),
        }
    assert not any(path.startswith(L.K3S_TLS_DIR) for path in world.record("node1").files)


def test_k3s_would_start_with_the_right_credentials_and_settings(world: World) -> None:
    loaded = load_settings(to_raw(world.settings | world.credentials), secret_keys(set(world.credentials)))
    for hostname in world.vms:
        node = next(n for n in loaded.settings.nodes if n.hostname == hostname)
        record = world.record(hostname)
        stick = world.stick_files(hostname)
        assert record.args == [node.role, "--config", L.K3S_CONFIG]
        assert yaml.safe_load(record.config) == k3s_config(loaded.settings, node)
        tokens = env_values(stick[L.K3S_ENV])
        wanted = {name: sha256(value) for name, value in tokens.items()}
        if node.role == "server":
            assert set(tokens) == {"K3S_TOKEN", "K3S_AGENT_TOKEN"}
            datastore = env_values(stick[L.DATASTORE_ENV])
            assert datastore["K3S_DATASTORE_CAFILE"] == f"{L.SECRETS_DIR}/{L.DATASTORE_CA}"
            wanted |= {name: sha256(value) for name, value in datastore.items()}
            ca = record.files[datastore["K3S_DATASTORE_CAFILE"]]
            assert ca["sha256"] == sha256(stick[L.DATASTORE_CA])
        else:
            assert set(tokens) == {"K3S_TOKEN"}
            assert not any(name.startswith("K3S_DATASTORE") for name in record.env)
        assert {name: record.env.get(name) for name in wanted} == wanted
        password = record.files[L.K3S_NODE_PASSWORD]
        assert (password["mode"], password["sha256"]) == ("0600", sha256(stick[L.NODE_PASSWORD]))
    server = yaml.safe_load(world.record("node0").config)
    assert server["node-label"] == ["ephemeros.io/zone=a"]
    assert server["node-taint"] == ["dedicated=control:NoSchedule"]
    assert f"node0.{DOMAIN}" in server["tls-san"]
    agent = yaml.safe_load(world.record("node1").config)
    assert agent["node-label"] == ["ephemeros.io/pool=general"]
    assert agent["server"] == loaded.settings.api_server_url


def test_log_export_delivers_each_nodes_journal_over_tls(world: World) -> None:
    vms = list(world.vms.values())
    for hostname in world.vms:
        pattern = re.compile(rf"^\S+ {hostname} k3s\[\d+\]: k3s stand-in: (server|agent) started")
        wait_for(partial(logged, world.logs, pattern), f"{hostname}'s logs", vms)


def test_a_changed_label_and_flatcar_release_are_served_with_the_same_sticks(world: World) -> None:
    """While the nodes run: a node label and the Flatcar release change, and `pulumi up` serves them; no stick
    changes. The nodes keep running (and reporting) what they booted until they reboot."""
    project = world.project
    images = {h: sha256(Path(world.nodes[h]["stickImage"]).read_bytes()) for h in world.vms}
    document = project.config_document()
    document["nodes"][0]["labels"] = {"ephemeros.io/zone": "b"}
    document["flatcar"]["version"] = FLATCAR_VERSIONS[1]
    project.write_config_document(document)
    started = time.monotonic()
    project.run("up", "--yes")
    world.timings["pulumi up of the change"] = time.monotonic() - started
    served = project.stack_output("nodes")
    for hostname in world.vms:
        assert served[hostname]["stickSha256"] == world.nodes[hostname]["stickSha256"]  # no stick to write again
        assert sha256(Path(served[hostname]["stickImage"]).read_bytes()) == images[hostname]
        assert served[hostname]["flatcarVersion"] == FLATCAR_VERSIONS[1]
        assert served[hostname]["bootDigest"] != world.nodes[hostname]["bootDigest"]
    assert served["node0"]["configDigest"] != world.nodes["node0"]["configDigest"]  # its label
    assert served["node1"]["configDigest"] == world.nodes["node1"]["configDigest"]
    world.served = served


def test_heartbeats_report_what_the_node_booted_and_fail_while_k3s_is_not_ready(world: World) -> None:
    vms = list(world.vms.values())
    for hostname, vm in world.vms.items():
        role = "server" if hostname == "node0" else "agent"
        successes = wait_for(partial(world.successes, hostname), f"a healthy heartbeat from {hostname}", vms)
        world.timings[f"{hostname} QEMU start to a healthy heartbeat"] = time.monotonic() - vm.started
        history = world.pings(hostname)
        first_fail = next(body for kind, body in history if kind == "fail")
        reason = "API server not ready" if role == "server" else "kubelet is not healthy"
        assert first_fail.startswith(f"{hostname}: {reason}"), first_fail
        assert history.index(("fail", first_fail)) < successes[0]  # it failed while k3s was starting, then recovered
        assert history[successes[0]][1] == f"{hostname}: k3s {role} healthy; {booted(world.nodes, hostname)}"
        assert all(body.endswith(booted(world.nodes, hostname)) for _, body in history)  # not what is served now
    cluster = world.healthchecks.check_named(f"k3s cluster dev ({DOMAIN})")
    assert cluster is not None
    kinds = wait_for(  # pinged by the healthy server, right after its own check, and never its /fail
        lambda: [kind for uuid, kind, _ in world.healthchecks.pings if uuid == cluster["uuid"]],
        "the cluster's heartbeat",
        vms,
        timeout=30,
    )
    assert set(kinds) == {"success"}


def test_the_dns_updater_keeps_the_nodes_records_and_the_healthy_server_claims_primary(world: World) -> None:
    bind = world.bind
    vms = list(world.vms.values())
    for hostname, vm in world.vms.items():
        wait_for(partial(answers, bind, f"{hostname}.{DOMAIN}", vm.address), f"{hostname}'s A record", vms)
    server = world.vms["node0"].address
    wait_for(partial(answers, bind, f"primary.{DOMAIN}", server), "node0's claim on primary", vms)
    claim = f"{server.replace('.', '-')}._claims.primary.{DOMAIN}"
    assert len(bind.dig(claim, "TXT")) == 1


def test_each_node_sees_that_what_is_served_changed_and_asks_for_a_reboot(world: World) -> None:
    """The update check on each running node: what it booted against what `pulumi up` now serves. The server's
    config (its label) and both boot scripts (the release) changed: each writes kured's sentinel with its reasons,
    which its journal says."""
    vms = list(world.vms.values())
    for hostname in world.vms:
        was, now = world.nodes[hostname], world.served[hostname]
        reasons = [f"boot script {was['bootDigest'][:12]} booted, {now['bootDigest'][:12]} served"]
        if was["configDigest"] != now["configDigest"]:
            reasons.insert(0, f"config {was['configDigest'][:12]} booted, {now['configDigest'][:12]} served")
        line = re.escape(f"reboot needed: {'; '.join(reasons)}")
        pattern = re.compile(rf"^\S+ {hostname} ephemeros-update-check\[\d+\]: {line}$")
        wait_for(partial(logged, world.logs, pattern), f"{hostname}'s request for a reboot", vms)


def test_a_reboot_from_the_same_stick_runs_the_new_config_and_release(world: World) -> None:
    """The server reboots (its reset button) into what is served now. Meanwhile, once the server has its k3s, the
    mirror starts serving another binary under k3s's name and the agent reboots too (see the next step)."""
    server, agent = world.vms["node0"], world.vms["node1"]
    before = world.record("node0")
    seen, pings = len(records(server.reports())), len(world.pings("node0"))
    fetches = {
        "/ignition/node0.ign": world.asked_by("/ignition/node0.ign", "Ignition/"),
        K3S_PATH: world.requests.count(K3S_PATH),
    }
    world.agent_reset = (len(records(agent.reports())), len(agent.console()), fetches[K3S_PATH] + 1)

    server.reset()
    began = time.monotonic()
    wait_for(lambda: world.requests.count(K3S_PATH) > fetches[K3S_PATH], "node0's k3s download", [server])
    served = world.mirror / "k3s" / K3S_VERSION / "k3s"
    other = served.with_name("k3s.other")
    other.write_bytes(served.read_bytes() + b"\n")  # someone else's k3s, under the same name
    other.replace(served)  # the server's download, if still running, reads on from the old file
    agent.reset()
    world.agent_reset_at = time.monotonic()

    record = world.record("node0", after=seen)
    world.timings["node0 reset to k3s"] = time.monotonic() - began
    assert record.boot_id != before.boot_id  # a new boot, from the same stick image
    assert f"VERSION={FLATCAR_VERSIONS[1]}\n" in record.os_release
    assert yaml.safe_load(record.config)["node-label"] == ["ephemeros.io/zone=b"]
    assert world.asked_by("/ignition/node0.ign", "Ignition/") == fetches["/ignition/node0.ign"] + 1
    assert world.requests.count(f"/flatcar/{FLATCAR_VERSIONS[1]}/{B.FLATCAR_INITRD}") >= 1
    now = booted(world.served, "node0")
    wait_for(lambda: world.pings("node0")[pings:], "node0's heartbeat after its reboot", [server])
    assert [body for _, body in world.pings("node0")[pings:] if not body.endswith(now)] == []


def test_a_k3s_other_than_the_pinned_one_stops_the_boot(world: World) -> None:
    agent = world.vms["node1"]
    seen, console, k3s_fetches = world.agent_reset
    failure = wait_for(partial(console_line, agent, console, "Ignition failed"), "Ignition's failure on node1", [agent])
    world.timings["node1 reset to Ignition's failure"] = time.monotonic() - world.agent_reset_at
    assert L.K3S_BINARY in failure, failure
    assert world.requests.count(K3S_PATH) >= k3s_fetches + 1  # it downloaded what the mirror served
    wait_for(partial(console_line, agent, console, "Reached target emergency.target"), "emergency mode", [agent])
    assert records(agent.reports())[seen:] == []  # k3s's unit never ran what it downloaded


def test_no_secret_reaches_a_console_or_the_logs(world: World) -> None:
    secrets = set()
    for hostname in world.vms:
        stick = world.stick_files(hostname)
        for name, content in stick.items():
            if name.endswith(".env") and name not in (L.NODE_IDENTITY, L.LOG_EXPORT_ENV):
                secrets |= {v for k, v in env_values(content).items() if k != "K3S_DATASTORE_CAFILE"}
            elif name.endswith(".key"):
                secrets |= {line for line in content.splitlines() if line and not line.startswith("-----")}
            elif name == L.NODE_PASSWORD:
                secrets.add(content.strip())
    secrets |= {url.rsplit("/", 1)[1] for url in secrets if "/ping/" in url}  # the check's UUID alone
    secrets |= {urlsplit(url).password or "" for url in secrets if url.startswith("postgres://")} - {""}
    vms = world.vms.values()
    seen = "\n".join([*(vm.console() for vm in vms), *(vm.reports() for vm in vms), *world.logs.lines()])
    assert len(secrets) > 10
    assert [s for s in secrets if s in seen] == []
