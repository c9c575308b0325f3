"""A DNS server that answers every question and update NOERROR without signing anything: what a spoofer on the
path, or a server that ignores TSIG, would send. Signed clients must refuse to act on its answers."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset


def _answer(wire: bytes) -> bytes:
    query = dns.message.from_wire(wire, keyring={}, ignore_trailing=True, continue_on_error=True)
    response = dns.message.Message(id=query.id)
    response.flags = dns.flags.QR | dns.flags.AA | dns.opcode.to_flags(query.opcode())
    response.set_rcode(dns.rcode.NOERROR)
    response.question = list(query.question)
    for question in query.question:
        if question.rdtype == dns.rdatatype.SOA:  # it claims every zone
            soa = f"ns.{question.name} hostmaster.{question.name} 1 3600 600 86400 300"
            response.answer.append(dns.rrset.from_text(question.name, 300, "IN", "SOA", soa))
    return response.to_wire()


def _serve(listener: socket.socket) -> None:
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            try:
                (length,) = struct.unpack("!H", connection.recv(2, socket.MSG_WAITALL))
                answer = _answer(connection.recv(length, socket.MSG_WAITALL))
                connection.sendall(struct.pack("!H", len(answer)) + answer)
            except (OSError, struct.error, dns.exception.DNSException):
                continue


@contextmanager
def unsigned_responder() -> Iterator[int]:
    """Listen on a free loopback TCP port; yields the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    thread = threading.Thread(target=_serve, args=(listener,), daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
