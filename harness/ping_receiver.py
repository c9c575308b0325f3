"""A heartbeat ping receiver for a network namespace: answers every request 200 OK and appends one JSON line per
request (method, path, body) to a log, for a test to read what a VM pinged.

    python -m harness.ping_receiver ADDRESS PORT LOG
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _Receiver(BaseHTTPRequestHandler):
    log: Path

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _receive(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        with self.log.open("a") as log:
            log.write(json.dumps({"method": self.command, "path": self.path, "body": body}) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = do_HEAD = _receive


def main() -> None:
    address, port, log = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    handler = type("Handler", (_Receiver,), {"log": log})
    ThreadingHTTPServer((address, port), handler).serve_forever()


if __name__ == "__main__":
    main()
