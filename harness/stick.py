"""Read what a stick image holds, as a node would find it (without mounting anything)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from base import stick_layout as B


def extract(image: Path, start: int, size: int, into: Path) -> Path:
    """Copy one partition's bytes out of `image` into the file `into`."""
    with image.open("rb") as disk:
        disk.seek(start)
        into.write_bytes(disk.read(size))
    return into


def secret_file(image: Path, name: str) -> str | None:
    """The content of `name` on the image's secrets partition, or None when it has no such file."""
    with tempfile.TemporaryDirectory() as tmp:
        partition = extract(image, B.SECRETS_START, B.SECRETS_SIZE, Path(tmp) / "secrets.img")
        done = subprocess.run(
            ["debugfs", "-R", f"cat /{name}", str(partition)], capture_output=True, text=True, check=True
        )
        if "File not found" in done.stderr:
            return None
        return done.stdout
