"""Where the tests' assets are cached (the Debian VM image, local apt repositories, the boot kernel and initrd), and
one builder at a time for each of them.

`make setup-test` links .tools/test-assets to the cache that every checkout on this machine shares
(scripts/cache.sh), so a fresh clone finds what another built. Several test processes (pytest-xdist's workers, other
checkouts' runs) may want the same asset at once: the first builds it under a lock while the others wait, then find
it done. Each asset is built in a temporary directory and renamed into place, so a reader never sees half of one.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.stack import REPO

CACHE = REPO / ".tools/test-assets"
UNUSED_DAYS = 30  # an asset no run used for this long may be removed when another one is built


@contextmanager
def building(name: str) -> Iterator[None]:
    """Hold the lock of asset `name` (waiting for another process that holds it) while the caller builds it."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f".{name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def mark_used(directory: Path) -> None:
    """Note that a run uses the asset in `directory` now (its modification time), so that it is not pruned."""
    directory.touch()


def unused(directory: Path) -> bool:
    """Whether no run used the asset in `directory` for UNUSED_DAYS (another checkout may still be using a newer
    one, or this one: assets in use are never removed)."""
    return time.time() - directory.stat().st_mtime > UNUSED_DAYS * 86400


def cached(done: Path, build: Callable[[Path], Path]) -> float:
    """Make the asset `done` (CACHE/<kind>-<key of its recipe>) once: `build(work)` makes it in an empty directory
    under CACHE and returns the tree that is renamed into place. Waits while another process builds it; removes what
    killed builds of the kind left, and the kind's other recipes when unused. Seconds this call spent building."""
    seconds = 0.0
    if not done.is_dir():
        with building(done.name):
            if not done.is_dir():  # not built by another process while this one waited
                began = time.monotonic()
                _build_into(done, build)
                seconds = time.monotonic() - began
    mark_used(done)
    return seconds


def _build_into(done: Path, build: Callable[[Path], Path]) -> None:
    kind = done.name.rsplit("-", 1)[0]
    for stale in CACHE.glob(f".{kind}-*"):  # left by a killed build (its mounts died with it)
        if time.time() - stale.stat().st_mtime > 3 * 3600:
            shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".{done.name}-", dir=CACHE))
    try:
        build(work).rename(done)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for old in CACHE.glob(f"{kind}-*"):  # the kind's other recipes, unless a run (of any checkout) used one lately
        if old != done and unused(old):
            shutil.rmtree(old, ignore_errors=True)
