"""A DNS-over-TCP relay in front of a real server (BIND), passing every message through unchanged (TSIG
signatures stay valid), with a tripwire called when the server's answer to an UPDATE comes back, before the
client gets it: a test can kill the client there, once the server made the change."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dns.opcode
import dns.rcode

Tripwire = Callable[[int], None]  # the rcode of an UPDATE's answer


@dataclass
class DnsRelay:
    port: int
    tripwire: Tripwire | None = None
    updates: list[int] = field(default_factory=list)  # the rcodes of the UPDATE answers relayed so far

    @property
    def address(self) -> str:
        return "127.0.0.1"


def _read(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _message(connection: socket.socket) -> bytes:
    (length,) = struct.unpack("!H", _read(connection, 2))
    return _read(connection, length)


def _relay(relay: DnsRelay, client: socket.socket, upstream: tuple[str, int]) -> None:
    with client, socket.create_connection(upstream, timeout=10) as server:
        try:
            while True:
                question = _message(client)
                server.sendall(struct.pack("!H", len(question)) + question)
                answer = _message(server)
                flags = struct.unpack("!H", answer[2:4])[0]
                if dns.opcode.from_flags(flags) == dns.opcode.UPDATE:
                    relay.updates.append(dns.rcode.from_flags(flags, 0))
                    if relay.tripwire is not None:
                        relay.tripwire(relay.updates[-1])
                client.sendall(struct.pack("!H", len(answer)) + answer)
        except (ConnectionError, OSError):
            return


@contextmanager
def dns_relay(upstream_host: str, upstream_port: int) -> Iterator[DnsRelay]:
    """A relay on a free loopback port to the server at `upstream_host`:`upstream_port`."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    relay = DnsRelay(listener.getsockname()[1])

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_relay, args=(relay, client, (upstream_host, upstream_port)), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield relay
    finally:
        listener.close()
