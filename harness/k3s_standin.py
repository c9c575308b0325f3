"""A stand-in for the k3s binary (harness/standins/k3s), which cannot be built here, and what it reports.

A node's Ignition downloads it from the k3s mirror and checks its sha256, as it does k3s; the node's k3s unit
starts it as it would start k3s. It writes one line on the VM's second serial port: what k3s would have been
given (arguments, the environment's names with digests of their values, the config file and its drop-ins, the
files k3s reads with modes and digests, the mounts). It is a static Go program (standard library only), built once
per source and Go version in the test assets' cache (harness/asset_cache.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.asset_cache import CACHE

SOURCE = Path(__file__).parent / "standins/k3s"
MARKER = "EPHEMEROS-K3S-STAND-IN"
BUILD_ENV = {"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "amd64", "GOFLAGS": "-mod=readonly -buildvcs=false"}
LDFLAGS = "-s -w -buildid="


def k3s_standin() -> Path:
    """The stand-in binary: built once per source and Go version (a few seconds), then from the cache."""
    if shutil.which("go") is None:
        raise RuntimeError("Go is needed to build the k3s stand-in (https://go.dev/dl)")
    go_version = subprocess.run(["go", "version"], capture_output=True, text=True, check=True).stdout
    sources = "".join(f"{p.name}:{p.read_text()}" for p in sorted(SOURCE.iterdir()) if p.is_file())
    key = hashlib.sha256(f"{go_version}{BUILD_ENV}{LDFLAGS}{sources}".encode()).hexdigest()[:16]
    binary = CACHE / f"k3s-stand-in-{key}" / "k3s"
    if binary.is_file():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".k3s-stand-in-{key}-", dir=CACHE))
    try:
        subprocess.run(
            ["go", "build", "-trimpath", "-ldflags", LDFLAGS, "-o", str(work / "k3s"), "."],
            cwd=SOURCE,
            env={**os.environ, **BUILD_ENV},
            check=True,
            capture_output=True,
        )
        try:
            work.rename(binary.parent)
        except OSError:
            if not binary.is_file():  # another run placed the same build meanwhile
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return binary


@dataclass(frozen=True)
class K3sRecord:
    """What the stand-in was started with, as it reported it."""

    args: list[str]  # role, then the arguments
    env: dict[str, str]  # name -> sha256 of the value
    config: str  # the --config file
    dropins: dict[str, str]  # its drop-ins, path -> content
    files: dict[str, dict[str, Any]]  # path -> mode, uid, gid, sha256 (a directory ends with /)
    mounts: dict[str, str]  # mount point -> "source fstype options"
    labels: dict[str, str]  # filesystem label -> device
    os_release: str
    hostname: str
    uptime: float  # seconds since the node's kernel started
    boot_id: str

    @property
    def role(self) -> str:
        return self.args[0]


def records(serial: str) -> list[K3sRecord]:
    """Every record the stand-in wrote on a serial port's output, in order."""
    found = []
    for line in serial.splitlines():
        _, marker, payload = line.partition(f"{MARKER} ")
        if not marker or not payload.strip():
            continue
        try:
            data = json.loads(base64.b64decode(payload.strip(), validate=True))
        except ValueError:
            continue  # a line cut short: the next read has it whole
        found.append(
            K3sRecord(
                args=data["args"],
                env=data["env"],
                config=data["config"],
                dropins=data["dropins"] or {},
                files=data["files"],
                mounts=data["mounts"],
                labels=data["labels"],
                os_release=data["osRelease"],
                hostname=data["hostname"],
                uptime=float(data["uptime"]),
                boot_id=data["bootId"],
            )
        )
    return found
