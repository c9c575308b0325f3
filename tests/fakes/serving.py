"""What the fakes share: serving one on a free port for the duration of a block."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol, TypeVar


class Fake(Protocol):
    url: str


F = TypeVar("F", bound=Fake)


@contextmanager
def serve(fake: F, handler: type[BaseHTTPRequestHandler], host: str) -> Iterator[F]:
    """Serve `fake` through `handler` (which reaches it as `self.fake`) on a free port of `host`; `fake.url` is
    its base URL."""
    bound = type("Handler", (handler,), {"fake": fake})
    server = ThreadingHTTPServer((host, 0), bound)
    fake.url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
