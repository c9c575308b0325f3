"""What every server harness needs: where the built test tools are, free loopback ports, stopping a process (or
killing one with all it started), a log's tail, and writing a private file."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

from harness.stack import REPO

TESTTOOLS_BIN = REPO / ".tools/testtools/bin"


def built_tool(name: str) -> Path:
    """The path of a binary that testtools/build.sh builds."""
    path = TESTTOOLS_BIN / name
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: run `make setup-test` (it runs testtools/build.sh)")
    return path


def free_ports(count: int) -> list[int]:
    """`count` different loopback TCP ports that were free a moment ago."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def free_port() -> int:
    return free_ports(1)[0]


def stop(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    """Terminate `process`, and kill it if it has not exited after `grace` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, and those they started, as /proc shows them now."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and every process under it at once, as a machine that loses power would stop them."""
    for target in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)


def log_tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to a new file of mode 0600 (replacing any file there)."""
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(data)
