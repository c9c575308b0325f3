"""A real block device for tests: a loop device over a file (Debian's losetup, as root)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def loop_device(backing: Path, size: int) -> Iterator[Path]:
    """A loop device over a new file of `size` bytes, filled with 0xff; detached afterwards."""
    with backing.open("wb") as data:
        data.write(b"\xff" * size)
    done = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cannot attach a loop device (losetup, as root): {done.stderr.strip()}")
    device = Path(done.stdout.strip())
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", str(device)], check=False)


def major_minor(device: Path) -> str:
    rdev = device.stat().st_rdev
    return f"{os.major(rdev)}:{os.minor(rdev)}"
