"""A private network namespace with a bridge, taps for VMs on it, and dnsmasq giving them fixed addresses.

Everything lives inside the namespace (bridge, taps, dnsmasq, the servers and clients a test runs there), so
its addresses never meet the host's or another run's: only the namespace's name is unique per run. Names in
`hosts` resolve in the namespace (through /etc/netns/<name>/hosts, which `ip netns exec` mounts over
/etc/hosts) and, through dnsmasq, in the VMs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any

from harness.processes import stop

BRIDGE = "br0"
NETNS_ETC = Path("/etc/netns")


@dataclass(frozen=True)
class Lease:
    mac: str
    address: str
    hostname: str


@dataclass
class Network:
    name: str  # the namespace's name
    interface: IPv4Interface  # the bridge's address and prefix: servers in the namespace listen there
    taps: list[str] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        return str(self.interface.ip)

    def command(self, cmd: Sequence[str]) -> list[str]:
        """`cmd` as run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run `cmd` in the namespace; output is captured as text unless told otherwise."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.command(cmd), **kwargs)

    def popen(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command(cmd), **kwargs)

    def add_address(self, address: str, device: str = "lo") -> None:
        """Another address of the namespace (on loopback by default), which its servers may listen on and VMs on
        the bridge reach through it, their gateway."""
        _ip("-n", self.name, "addr", "add", address, "dev", device)

    def add_tap(self, tap: str) -> None:
        """A tap device on the bridge, for a QEMU started in the namespace to open by name."""
        _ip("-n", self.name, "tuntap", "add", "dev", tap, "mode", "tap")
        self.taps.append(tap)
        _ip("-n", self.name, "link", "set", tap, "master", BRIDGE)
        _ip("-n", self.name, "link", "set", tap, "up")


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


def hosts_file(hosts: Mapping[str, str]) -> str:
    """/etc/hosts lines for `hosts` (name -> address)."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{address}\t{name}" for name, address in hosts.items()]
    return "\n".join(lines) + "\n"


@contextmanager
def network_namespace(interface: IPv4Interface, hosts: Mapping[str, str]) -> Iterator[Network]:
    """A new namespace with loopback and a bridge at `interface`; deleted, with all in it, on exit."""
    network = Network(f"ephemeros-{os.getpid()}-{secrets.token_hex(3)}", interface)
    etc = NETNS_ETC / network.name
    try:
        etc.mkdir(parents=True)
        (etc / "hosts").write_text(hosts_file(hosts))
        # Names not in hosts go to dnsmasq on the bridge, which answers at once, not to the host's resolver.
        (etc / "resolv.conf").write_text(f"nameserver {network.gateway}\n")
        _ip("netns", "add", network.name)
        _ip("-n", network.name, "link", "set", "lo", "up")
        _ip("-n", network.name, "link", "add", BRIDGE, "type", "bridge")
        _ip("-n", network.name, "addr", "add", str(interface), "dev", BRIDGE)
        _ip("-n", network.name, "link", "set", BRIDGE, "up")
        yield network
    finally:
        for link in [*network.taps, BRIDGE]:
            subprocess.run(["ip", "-n", network.name, "link", "del", link], capture_output=True)
        subprocess.run(["ip", "netns", "del", network.name], capture_output=True)
        shutil.rmtree(etc, ignore_errors=True)


@contextmanager
def dnsmasq(network: Network, workdir: Path, leases: Sequence[Lease], hosts: Mapping[str, str]) -> Iterator[Path]:
    """dnsmasq on the bridge: each lease's address to its MAC only, and DNS for `hosts`; yields its log."""
    if shutil.which("dnsmasq") is None:
        raise RuntimeError("dnsmasq is missing: install the Debian package dnsmasq-base (just the binary)")
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "dnsmasq.log"
    (workdir / "dnsmasq.hosts").write_text(hosts_file(hosts))
    subnet = network.interface.network
    config = [
        f"interface={BRIDGE}",
        "bind-interfaces",
        "except-interface=lo",
        "no-resolv",
        "no-hosts",
        "user=root",
        f"addn-hosts={workdir / 'dnsmasq.hosts'}",
        f"dhcp-range={subnet.network_address},static,{subnet.netmask},12h",
        f"dhcp-leasefile={workdir / 'dnsmasq.leases'}",
        f"log-facility={log}",
        "log-dhcp",
        *(f"dhcp-host={lease.mac},{lease.address},{lease.hostname}" for lease in leases),
    ]
    (workdir / "dnsmasq.conf").write_text("\n".join(config) + "\n")
    process = network.popen(
        ["dnsmasq", "--keep-in-foreground", f"--conf-file={workdir / 'dnsmasq.conf'}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while "DHCP, sockets bound" not in (log.read_text() if log.exists() else ""):
            if process.poll() is not None or time.monotonic() > deadline:
                errors = process.stderr.read().decode() if process.stderr and process.poll() is not None else ""
                raise RuntimeError(f"dnsmasq did not start: {errors}{log.read_text() if log.exists() else ''}")
            time.sleep(0.1)
        yield log
    finally:
        stop(process)
