"""A LAN mirror of k3s releases on loopback, laid out as `k3s.baseUrl` expects (`<baseUrl>/<version>/k3s`),
holding random bytes under k3s's name for one version: what Ignition downloads and checks while applying a
config to a scratch root (it never runs it)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.http_server import serve_directory


@dataclass(frozen=True)
class K3sMirror:
    base_url: str
    sha256: str
    binary: bytes
    requests: list[str]  # the paths asked for, in order

    def serving(self, doc: dict[str, Any], sha256: str | None = None) -> dict[str, Any]:
        """The same stack settings with k3s coming from this mirror, as a lab without internet would set them
        (with another `sha256` when given)."""
        return {**doc, "k3s": {**doc["k3s"], "baseUrl": self.base_url, "sha256": sha256 or self.sha256}}


@contextmanager
def k3s_mirror(root: Path, version: str, size: int = 3 * 1024 * 1024) -> Iterator[K3sMirror]:
    binary = os.urandom(size)
    (root / version).mkdir(parents=True)
    (root / version / "k3s").write_bytes(binary)
    with serve_directory(root) as (url, requests):
        yield K3sMirror(url, hashlib.sha256(binary).hexdigest(), binary, requests)
