"""A static HTTP server on loopback, serving a directory, for tests that make something download a file."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]
    agents: list[tuple[str, str]] | None

    def log_message(self, format: str, *args: Any) -> None:
        self.requests.append(self.path)
        if self.agents is not None:
            self.agents.append((self.path, self.headers.get("User-Agent", "")))


@contextmanager
def serve_directory(
    root: Path, host: str = "127.0.0.1", agents: list[tuple[str, str]] | None = None
) -> Iterator[tuple[str, list[str]]]:
    """Serve `root` at http://host:<free port>; yields the base URL and the list of paths requested so far. Each
    request's path and User-Agent also go to `agents`, when given."""
    requests: list[str] = []
    attributes = {"requests": requests, "agents": agents}
    handler = functools.partial(type("Handler", (_QuietHandler,), attributes), directory=str(root))
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
