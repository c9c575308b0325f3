"""The Vultr datastore, for real but for the cloud: `pulumi up` of a stack with datastore.type vultr against the
local Vultr API (harness/fakes/vultr.py), whose reserved address is the test VM's, and the local Healthchecks
(harness/fakes/healthchecks.py) for the dumps' and the restore check's heartbeat checks; then a stock Debian 12
VM (harness/debian_vm.py) booted with exactly the user data the program sent to the API, on a private network
where an S3 server (versitygw) takes the dumps, a receiver takes the heartbeat pings (Healthchecks' ping endpoint
is the receiver's address there), and a stand-in answers at the metadata service's address. Used by
tests/test_datastore_vm.py and bench/datastore.py.
"""

from __future__ import annotations

import base64
import json
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base import datastore_layout as D
from base import node_layout as L
from harness.debian_vm import BRIDGE, DEFAULT_ADDRESS, CloudInitResult, DebianVM, debian_vm
from harness.fakes import healthchecks as healthchecks_fake
from harness.fakes.healthchecks import FakeHealthchecks
from harness.fakes.vultr import FakeVultr, running
from harness.processes import stop
from harness.pulumi_project import PulumiProject
from harness.s3_server import S3Server, s3_server
from harness.stack import REPO, stack_settings
from harness.stick import secret_file

# What the user data installs (cloudinit.render).
PACKAGES = ("postgresql", "ca-certificates", "curl", "nftables", "rclone")
S3_PORT = 9000
PING_PORT = 8000
BUCKET = "k3s-dumps"
PREFIX = "lab/"
METADATA_STAND_IN = "the metadata service's stand-in: user data would be here"


class _PingsElsewhere(FakeHealthchecks):
    """The local Healthchecks with another ping endpoint than its own address, as a self-hosted Healthchecks may
    have (its PING_ENDPOINT setting): where the VM reaches the receiver."""

    ping_endpoint = ""

    def to_dict(self, check: dict[str, Any], readonly: bool = False) -> dict[str, Any]:
        found = super().to_dict(check, readonly)
        if "ping_url" in found:
            found["ping_url"] = f"{self.ping_endpoint}/{check['uuid']}"
        return found


@dataclass(frozen=True)
class Pings:
    """What the receiver in the VM's network got, and the checks they are for."""

    log: Path
    healthchecks: FakeHealthchecks

    def of(self, check_name: str) -> list[dict[str, str]]:
        """The pings to the check called `check_name`, oldest first, each with its kind: start, 0, 1, ..."""
        check = self.healthchecks.check_named(check_name)
        if check is None or not self.log.exists():
            return []
        prefix = f"/ping/{check['uuid']}"
        found = []
        for line in self.log.read_text().splitlines():
            ping = json.loads(line)
            if ping["path"].startswith(prefix):
                found.append({"kind": ping["path"][len(prefix) :].lstrip("/") or "success", "body": ping["body"]})
        return found


@dataclass
class DatastoreWorld:
    project: PulumiProject
    fake: FakeVultr
    vm: DebianVM
    s3: S3Server
    ssh_key: Path
    endpoint: str  # as node0's stick carries it
    ca: Path  # the datastore CA, as node0's stick carries it
    user_data: str
    cloud_init: CloudInitResult  # its outcome on the VM, and the seconds from QEMU's start until it was done
    pings: Pings

    def ssh(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `command` on the VM as root (through the default user's sudo), over SSH from the namespace."""
        done = self.vm.run(
            [
                "ssh", "-i", str(self.ssh_key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", f"debian@{self.vm.address}",
                f"sudo bash -c {shlex.quote(command)}",
            ],
            timeout=300,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"on the VM: {command}\n{done.stdout}\n{done.stderr}")
        return done


def stack(fake: FakeVultr, ssh_public_key: str, healthchecks_url: str | None = None) -> dict[str, Any]:
    """The stack's settings: with healthchecks_url, heartbeat checks there (the dumps' and the restore check's)."""
    doc = stack_settings("dev")
    doc["sshKeys"] = [ssh_public_key]
    if healthchecks_url is not None:
        doc["heartbeat"] = {"provider": "healthchecks", "apiUrl": healthchecks_url}
    doc["datastore"] = {
        "type": "vultr",
        "vultr": {"region": "ams", "allowedSources": ["10.77.77.0/24"], "apiUrl": fake.url, "waitForPostgres": False},
        "dumps": {
            "endpoint": f"http://{BRIDGE.ip}:{S3_PORT}",
            "region": "us-east-1",
            "bucket": BUCKET,
            "prefix": PREFIX,
            "keep": {"hourly": 2, "daily": 0, "weekly": 0},
        },
    }
    return doc


def _ssh_key(directory: Path) -> tuple[Path, str]:
    key = directory / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test@ephemeros", "-f", str(key)], check=True)
    return key, (directory / "id_ed25519.pub").read_text().strip()


@contextmanager
def datastore_world(workdir: Path, packages: Sequence[str] = PACKAGES) -> Iterator[DatastoreWorld]:
    """Everything up, cloud-init done (checked), the bucket made; torn down afterwards."""
    with ExitStack() as stack_:
        fake = stack_.enter_context(running(FakeVultr()))
        fake.assign_reserved_ipv4(DEFAULT_ADDRESS)  # the datastore's address is the VM's: its certificate names it
        account = fake.add_account()
        healthchecks = _PingsElsewhere()
        healthchecks.ping_endpoint = f"http://{BRIDGE.ip}:{PING_PORT}/ping"
        stack_.enter_context(healthchecks_fake.running(healthchecks))
        key, public_key = _ssh_key(workdir)
        project = PulumiProject(workdir / "ephemeros", "vmtest")
        project.init(stack(fake, public_key, healthchecks.url))
        project.set_secret("vultrApiKey", account.api_key)
        project.set_secret("healthchecksApiKey", healthchecks.add_project().api_key)
        keys = ("EPH" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))
        project.set_secret("dumpsAccessKeyId", keys[0])
        project.set_secret("dumpsSecretAccessKey", keys[1])
        project.run("up", "--yes")
        stack_.callback(project.run, "destroy", "--yes", check=False)

        user_data = base64.b64decode(fake.requests_to("POST", "/v2/instances")[0].body["user_data"]).decode()
        image = Path(project.stack_output("nodes")["node0"]["stickImage"])
        env = secret_file(image, L.DATASTORE_ENV) or ""
        endpoint = env.split('K3S_DATASTORE_ENDPOINT="', 1)[1].split('"', 1)[0]
        ca = workdir / "datastore-ca.crt"
        ca.write_text(secret_file(image, L.DATASTORE_CA) or "")

        vm = stack_.enter_context(debian_vm(user_data, packages=packages, address=DEFAULT_ADDRESS))
        pings = Pings(workdir / "pings.log", healthchecks)
        receiver = [sys.executable, "-m", "harness.ping_receiver", str(BRIDGE.ip), str(PING_PORT), str(pings.log)]
        stack_.callback(stop, vm.network.popen(receiver, cwd=REPO))
        stack_.callback(stop, _metadata_stand_in(vm, workdir / "metadata"))
        result = vm.wait_for_cloud_init(timeout=1500)
        if not result.ok:
            raise AssertionError(f"cloud-init did not finish cleanly on the datastore VM:\n{result.explain()}")
        s3 = stack_.enter_context(s3_server(host=str(BRIDGE.ip), port=S3_PORT, keys=keys, where=vm.network.command))
        s3.create_bucket(BUCKET)
        yield DatastoreWorld(project, fake, vm, s3, key, endpoint, ca, user_data, result, pings)


def _metadata_stand_in(vm: DebianVM, directory: Path) -> subprocess.Popen[bytes]:
    """An HTTP server at the metadata service's address in the VM's network, serving a stand-in user data."""
    (directory / "latest").mkdir(parents=True)
    (directory / "latest/user-data").write_text(METADATA_STAND_IN + "\n")
    vm.network.add_address(f"{D.METADATA_ADDRESS}/32")
    server = [sys.executable, "-m", "http.server", "--bind", D.METADATA_ADDRESS, "--directory", str(directory), "80"]
    return vm.network.popen(server, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_log(path: Path, text: str, timeout: float) -> bool:
    """Whether `text` shows up in the file at `path` within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.5)
    return False
