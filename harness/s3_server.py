"""A real S3 server on loopback: versitygw over a directory (its POSIX backend), with a root key made per run.

Requests are signed by curl (`--aws-sigv4`); `S3Server.rclone` runs rclone against it with a remote defined only
by environment variables, as the datastore's dump job does.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from harness.processes import built_tool, free_port, log_tail, stop

REGION = "us-east-1"
_S3_XML = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class S3Error(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        super().__init__(f"S3 {method} {path} answered {status}: {body.decode(errors='replace')}")
        self.status = status


Wrap = Callable[[list[str]], list[str]]  # how a command runs where the server is (e.g. in a network namespace)


def _here(command: list[str]) -> list[str]:
    return command


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    log_path: Path
    where: Wrap = _here

    def request(self, method: str, path: str, query: str = "") -> tuple[int, bytes]:
        """Send a SigV4-signed request for `path` (quoted here) and `query` (already encoded) with curl.

        The credentials go to curl on its standard input, not in its arguments.
        """
        command = [
            "curl", "--silent", "--show-error", "--config", "-",
            "--aws-sigv4", f"aws:amz:{self.region}:s3",
            "--header", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            "--request", method, "--write-out", "%{stderr}\n%{http_code}",
        ]  # fmt: skip
        done = subprocess.run(
            self.where([*command, f"{self.endpoint}{quote(path)}{'?' + query if query else ''}"]),
            input=f'user = "{self.access_key}:{self.secret_key}"\n'.encode(),
            capture_output=True,
            check=False,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"curl {method} {path} failed: {done.stderr.decode(errors='replace')}")
        return int(done.stderr.decode().splitlines()[-1]), done.stdout

    def _ok(self, method: str, path: str, query: str = "") -> bytes:
        status, body = self.request(method, path, query)
        if not 200 <= status < 300:
            raise S3Error(method, f"{path}?{query}" if query else path, status, body)
        return body

    def create_bucket(self, bucket: str) -> None:
        self._ok("PUT", f"/{bucket}")

    def get_object(self, bucket: str, key: str) -> bytes:
        return self._ok("GET", f"/{bucket}/{key}")

    def list_buckets(self) -> list[str]:
        listing = ElementTree.fromstring(self._ok("GET", "/"))  # noqa: S314 (our own server's answer)
        return [name.text or "" for name in listing.iter(f"{_S3_XML}Name")]

    def list_objects(self, bucket: str) -> dict[str, int]:
        """Every key in `bucket` with its size (ListObjectsV2, following continuation tokens)."""
        objects: dict[str, int] = {}
        token = ""
        while True:
            query = "list-type=2" + (f"&continuation-token={quote(token, safe='')}" if token else "")
            listing = ElementTree.fromstring(self._ok("GET", f"/{bucket}", query=query))  # noqa: S314 (our server)
            for item in listing.iter(f"{_S3_XML}Contents"):
                objects[item.findtext(f"{_S3_XML}Key") or ""] = int(item.findtext(f"{_S3_XML}Size") or 0)
            token = listing.findtext(f"{_S3_XML}NextContinuationToken") or ""
            if listing.findtext(f"{_S3_XML}IsTruncated") != "true" or not token:
                return objects

    def rclone_env(self, remote: str = "S3") -> dict[str, str]:
        """This environment plus an S3 remote named `remote` in variables only, as the dump job defines it.

        AWS_CA_BUNDLE is dropped: rclone 1.60 (Debian's) fails every S3 call when it is set.
        """
        prefix = f"RCLONE_CONFIG_{remote.upper()}_"
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE" and not k.startswith("RCLONE_")}
        return env | {
            "RCLONE_CONFIG": "/dev/null",
            f"{prefix}TYPE": "s3",
            f"{prefix}PROVIDER": "Other",
            f"{prefix}ENDPOINT": self.endpoint,
            f"{prefix}ACCESS_KEY_ID": self.access_key,
            f"{prefix}SECRET_ACCESS_KEY": self.secret_key,
            f"{prefix}REGION": self.region,
            f"{prefix}FORCE_PATH_STYLE": "true",
        }

    def rclone(self, *args: str, remote: str = "S3") -> subprocess.CompletedProcess[str]:
        """Run rclone with `rclone_env(remote)`; the caller checks the return code."""
        if shutil.which("rclone") is None:
            raise RuntimeError("rclone is missing: run `make setup-test` (Debian: rclone)")
        env = self.rclone_env(remote)
        return subprocess.run(["rclone", *args], env=env, capture_output=True, text=True, check=False, timeout=120)


def _answers(url: str, where: Wrap) -> bool:
    probe = where(["curl", "--silent", "--output", "/dev/null", "--max-time", "5", url])
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


@contextmanager
def s3_server(
    region: str = REGION,
    timeout: float = 30,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    keys: tuple[str, str] | None = None,
    where: Wrap = _here,
) -> Iterator[S3Server]:
    """Start versitygw's POSIX backend on a new directory and a free port (or `port`, on `host`), with a new root
    key pair (or `keys`: access key, secret key); `where` runs it, and every request, elsewhere (a namespace)."""
    versitygw = built_tool("versitygw")
    if shutil.which("curl") is None:
        raise RuntimeError("curl is missing: run `make setup-test` (Debian: curl)")
    directory = Path(tempfile.mkdtemp(prefix="ephemeros-s3-"))
    root_dir, log_path = directory / "root", directory / "versitygw.log"
    root_dir.mkdir()
    port = port or free_port()
    access_key, secret_key = keys or ("EPH" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))
    env = os.environ | {"ROOT_ACCESS_KEY": access_key, "ROOT_SECRET_KEY": secret_key}
    command = [str(versitygw), f"--port={host}:{port}", f"--region={region}", "--quiet", "posix", str(root_dir)]
    endpoint = f"http://{host}:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(where(command), stdout=log, stderr=log, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not _answers(endpoint, where):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"versitygw did not start:\n{log_tail(log_path.read_text(errors='replace'))}")
            time.sleep(0.1)
        yield S3Server(endpoint, access_key, secret_key, region, log_path, where)
    finally:
        stop(process)
        shutil.rmtree(directory, ignore_errors=True)
