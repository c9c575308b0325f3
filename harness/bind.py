"""A real BIND 9 on loopback (127.0.0.1, or ::1), primary for one zone that accepts RFC 2136 updates signed with one
TSIG key (or, with allow_update False, with no key: its policy refuses every update); it also knows a second key,
which the zone's update policy does not allow."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.processes import free_port, stop, write_private

NAMED = "/usr/sbin/named"


@dataclass(frozen=True)
class Bind:
    port: int
    zone: str
    key_name: str
    algorithm: str
    secret: str
    directory: Path
    other_key_name: str  # known to the server, not allowed to update the zone
    other_secret: str
    address: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        """address:port, with an IPv6 address in brackets."""
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"

    def dig(self, name: str, rtype: str = "A") -> list[str]:
        """What the server answers for `name`, through the real `dig`."""
        done = subprocess.run(
            ["dig", "+short", "+tcp", "-p", str(self.port), f"@{self.address}", name, rtype],
            capture_output=True,
            text=True,
            check=True,
        )
        return sorted(done.stdout.split())

    def dig_full(self, name: str, rtype: str = "A") -> str:
        """The answer section for `name`, with TTLs."""
        done = subprocess.run(
            ["dig", "+noall", "+answer", "+tcp", "-p", str(self.port), f"@{self.address}", name, rtype],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    def nsupdate(self, commands: str) -> None:
        """Change the zone behind ephemeros' back, with the real `nsupdate`."""
        script = f"server {self.address} {self.port}\nzone {self.zone}\n{commands}\nsend\n"
        key_file = str(self.directory / "update.key")  # the key in a file, not on nsupdate's command line
        subprocess.run(["nsupdate", "-v", "-k", key_file], input=script, text=True, check=True, capture_output=True)


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def bind_server(
    zone: str,
    key_name: str = "ephemeros-test",
    algorithm: str = "hmac-sha256",
    *,
    address: str = "127.0.0.1",
    allow_update: bool = True,
    secret: str | None = None,
) -> Iterator[Bind]:
    """BIND serving `zone`; `secret`: the key's secret (another server with the same key), else a new one."""
    if not Path(NAMED).exists() or shutil.which("dig") is None or shutil.which("nsupdate") is None:
        raise RuntimeError("BIND 9 is missing: run `make setup-test` (Debian: bind9 bind9-utils bind9-dnsutils)")
    directory = Path(tempfile.mkdtemp(prefix="ephemeros-bind-"))
    secret = secret or base64.b64encode(os.urandom(32)).decode()
    other_secret = base64.b64encode(os.urandom(32)).decode()
    other_key = f"{key_name}-other"
    updaters = f'key "{key_name}"' if allow_update else "none"
    port = free_port()
    (directory / "named.conf").write_text(
        f"""options {{
    directory "{directory}";
    listen-on port {port} {{ {address if ":" not in address else "none"}; }};
    listen-on-v6 port {port} {{ {address if ":" in address else "none"}; }};
    pid-file "{directory}/named.pid";
    recursion no;
    dnssec-validation no;
}};
controls {{ }};
key "{key_name}" {{ algorithm {algorithm}; secret "{secret}"; }};
key "{other_key}" {{ algorithm {algorithm}; secret "{other_secret}"; }};
zone "{zone}" {{ type primary; file "{directory}/zone.db"; allow-update {{ {updaters}; }}; }};
"""
    )
    write_private(
        directory / "update.key", f'key "{key_name}" {{ algorithm {algorithm}; secret "{secret}"; }};\n'.encode()
    )
    (directory / "zone.db").write_text(
        f"""$TTL 300
@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 300
@ IN NS ns.{zone}.
ns IN A 127.0.0.1
"""
    )
    log = (directory / "named.log").open("w")
    named = subprocess.Popen([NAMED, "-g", "-n", "1", "-c", str(directory / "named.conf")], stdout=log, stderr=log)
    server = Bind(port, zone, key_name, algorithm, secret, directory, other_key, other_secret, address)
    try:
        deadline = time.monotonic() + 30
        # "running" can come before the TCP listener takes connections: wait for both.
        while "running" not in (directory / "named.log").read_text() or not _accepts(address, port):
            if named.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"named did not start:\n{(directory / 'named.log').read_text()}")
            time.sleep(0.1)
        yield server
    finally:
        stop(named)
        log.close()
        shutil.rmtree(directory, ignore_errors=True)
