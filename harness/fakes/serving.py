"""What the fakes share: serving one on a free port for the duration of a block, and a tripwire that a test can
set on a served fake to act (kill a `pulumi up`, say) the moment the fake answers a request it has carried out."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol, TypeVar
from urllib.parse import urlsplit


class Fake(Protocol):
    url: str


F = TypeVar("F", bound=Fake)
Tripwire = Callable[[str, str, int], None]  # method, path (without the query), status of the answer about to go
_TRIPWIRES: dict[int, Tripwire] = {}


def set_tripwire(fake: Fake, tripwire: Tripwire | None) -> None:
    """Call `tripwire` as `fake` starts each answer, after it acted on the request (None: no more)."""
    if tripwire is None:
        _TRIPWIRES.pop(id(fake), None)
    else:
        _TRIPWIRES[id(fake)] = tripwire


class _Tripped(BaseHTTPRequestHandler):
    fake: Fake

    def send_response(self, code: int, message: str | None = None) -> None:
        tripwire = _TRIPWIRES.get(id(self.fake))
        if tripwire is not None:
            tripwire(self.command, urlsplit(self.path).path, code)
        super().send_response(code, message)


@contextmanager
def serve(fake: F, handler: type[BaseHTTPRequestHandler], host: str) -> Iterator[F]:
    """Serve `fake` through `handler` (which reaches it as `self.fake`) on a free port of `host`; `fake.url` is
    its base URL."""
    bound = type("Handler", (_Tripped, handler), {"fake": fake})
    server = ThreadingHTTPServer((host, 0), bound)
    fake.url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        set_tripwire(fake, None)
        server.shutdown()
        server.server_close()
