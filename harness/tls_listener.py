"""A TLS log endpoint on loopback, as a node's log export reaches one (Papertrail and the like): it takes
connections for a DNS name its certificate holds (signed by a test CA the caller hands to the node) and keeps
every line it receives, by connection."""

from __future__ import annotations

import contextlib
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness.certificates import CertKey, issue, new_ca


@dataclass
class TlsListener:
    name: str  # the DNS name in its certificate
    port: int
    ca: CertKey  # what a client must trust
    connections: list[list[str]] = field(default_factory=list)  # the lines of each connection, in order
    lock: threading.Lock = field(default_factory=threading.Lock)

    def lines(self) -> list[str]:
        with self.lock:
            return [line for connection in self.connections for line in connection]


def _receive(listener: TlsListener, connection: ssl.SSLSocket) -> None:
    lines: list[str] = []
    with listener.lock:
        listener.connections.append(lines)
    pending = b""
    with connection:
        while data := connection.recv(65536):
            pending += data
            *complete, pending = pending.split(b"\n")
            with listener.lock:
                lines.extend(line.decode(errors="replace") for line in complete)


def _serve(listener: TlsListener, server: socket.socket, context: ssl.SSLContext) -> None:
    while True:
        try:
            raw, _ = server.accept()
        except OSError:
            return  # closed
        try:
            connection = context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()  # a client that does not trust us hangs up during the handshake
            continue
        threading.Thread(target=_receive, args=(listener, connection), daemon=True).start()


@contextmanager
def tls_listener(name: str) -> Iterator[TlsListener]:
    """Listen on a free loopback port with a certificate for `name` until the block ends."""
    ca = new_ca("ephemeros test log endpoint CA")
    leaf = issue(ca, name, hosts=[name], server=True, client=False)
    with tempfile.TemporaryDirectory(prefix="ephemeros-tls-") as directory:
        cert, key = leaf.write(Path(directory), "server")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = socket.create_server(("127.0.0.1", 0))
        listener = TlsListener(name, server.getsockname()[1], ca)
        thread = threading.Thread(target=_serve, args=(listener, server, context), daemon=True)
        thread.start()
        try:
            yield listener
        finally:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            server.close()
