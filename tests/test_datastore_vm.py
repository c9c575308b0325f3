"""The datastore's user data runs for real: a stock Debian 12 VM (QEMU, TCG) booted with exactly the user data that
`pulumi up` sent to the (local) Vultr API, reached at the address its certificate names. kine, k3s's datastore
layer, connects with the endpoint and CA that a server's stick carries (verify-full) and keys go through it; a
wrong CA, a wrong password and a connection without TLS are refused; the provider that checks the login changes
the password in place, and logs in to a new VM without changing anything; only root may ask the metadata
service; a dump goes to a real S3 server and restores into a fresh database with the same rows; the weekly
restore check restores the newest dump, checks it and pings its heartbeat check with what it found.

One VM boot for the module (PostgreSQL is ready only minutes after boot under TCG); the tests are one scenario,
the first of which checks the Debian VM harness itself (tests/test_debian_vm.py has its parts that need no VM).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from base import datastore_layout as D
from harness import apt_repo
from harness.datastore_world import (
    BUCKET,
    METADATA_STAND_IN,
    PREFIX,
    DatastoreWorld,
    datastore_world,
    wait_for_log,
)
from harness.processes import built_tool, stop
from harness.stack import REPO
from pki.x509 import CertificateSpec, certificate, new_key

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.engine, pytest.mark.scenario, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatastoreWorld]:
    with datastore_world(tmp_path_factory.mktemp("datastore")) as made:
        yield made


def kine(world: DatastoreWorld, endpoint: str, ca: Path | None, log: Path) -> subprocess.Popen[bytes]:
    """kine in the VM's network, as a k3s server runs it: the endpoint and CA file from the stick."""
    command = [str(built_tool("kine")), "--endpoint", endpoint, "--listen-address", "127.0.0.1:2379"]
    if ca is not None:  # kine then adds sslrootcert, as K3S_DATASTORE_CAFILE does for k3s
        command += ["--ca-file", str(ca)]
    with log.open("wb") as output:
        return world.vm.network.popen(command, stdout=output, stderr=output)


def etcdctl(world: DatastoreWorld, *args: str) -> subprocess.CompletedProcess[str]:
    return world.vm.run([str(built_tool("etcdctl")), "--endpoints=http://127.0.0.1:2379", *args], timeout=60)


def test_the_vm_ran_the_user_data_with_packages_from_the_local_repo(world: DatastoreWorld) -> None:
    """The harness itself: cloud-init finished cleanly with a valid schema, the user data's packages (and their
    libraries) came from the local apt repository, and the VM's name resolves to its address in its network."""
    result = world.cloud_init
    assert (result.status, result.errors, result.schema_valid) == ("done", (), True), result.explain()
    assert {"postgresql", "rclone", "nftables", "libpq5"} <= result.packages.keys()
    assert set(apt_repo.installs(world.vm.repo.root)) <= result.packages.keys()  # Recommends too, from its index
    assert re.search(r'"GET /debian(-security)?/pool/\S+/postgresql-\d+_\S+_amd64\.deb HTTP/1\.1" 200',
                     world.vm.repo.log.read_text())  # fmt: skip
    world.vm.wait_for_port(D.POSTGRES_PORT, timeout=120)
    assert world.vm.run(["getent", "hosts", world.vm.hostname], check=True).stdout.split()[0] == world.vm.address


def test_postgresql_serves_tls_with_the_programs_certificate(world: DatastoreWorld) -> None:
    address = world.vm.address
    served = world.vm.run(
        ["openssl", "s_client", "-starttls", "postgres", "-connect", f"{address}:{D.POSTGRES_PORT}",
         "-CAfile", str(world.ca), "-verify_return_error", "-verify_ip", address],
        input="", timeout=60,
    )  # fmt: skip
    assert "Verify return code: 0 (ok)" in served.stdout, served.stdout + served.stderr


def test_kine_connects_with_the_sticks_endpoint_and_keys_go_through_it(world: DatastoreWorld, tmp_path: Path) -> None:
    assert world.endpoint.endswith(f"@{world.vm.address}:5432/k3s?sslmode=verify-full")
    process = kine(world, world.endpoint, world.ca, tmp_path / "kine.log")
    try:
        deadline = time.monotonic() + 120
        while etcdctl(world, "endpoint", "health").returncode != 0 and time.monotonic() < deadline:
            time.sleep(1)
        put = etcdctl(world, "put", "/registry/ephemeros/datastore", "survives-every-node")
        assert put.returncode == 0, put.stderr + (tmp_path / "kine.log").read_text()
        got = etcdctl(world, "get", "/registry/ephemeros/datastore", "--print-value-only")
        assert got.stdout.strip() == "survives-every-node"
    finally:
        stop(process)
    rows = world.ssh("runuser -u postgres -- psql -tA -d k3s -c 'SELECT count(*) FROM kine'").stdout
    assert int(rows) > 0  # the keys are in PostgreSQL, in the k3s database the k3s role owns


@pytest.mark.parametrize(
    ("case", "refusal"),
    [
        ("another CA", "x509: certificate signed by unknown authority"),
        ("a wrong password", "28P01"),
        ("no TLS", "no encryption"),
    ],
)
def test_a_wrong_ca_a_wrong_password_and_plain_tcp_are_refused(
    world: DatastoreWorld, tmp_path: Path, case: str, refusal: str
) -> None:
    endpoint, ca = world.endpoint, world.ca
    plain = case == "no TLS"
    if case == "another CA":
        key = new_key("ec-p256")
        ca = tmp_path / "other-ca.crt"
        ca.write_text(certificate(CertificateSpec("another CA", ca=True), key, None))
    elif case == "a wrong password":
        user, _, rest = endpoint.partition("@")
        endpoint = user.rsplit(":", 1)[0] + ":not-the-password@" + rest
    else:
        endpoint = endpoint.replace("sslmode=verify-full", "sslmode=disable")
    log = tmp_path / "kine.log"
    process = kine(world, endpoint, None if plain else ca, log)
    try:
        assert wait_for_log(log, refusal, timeout=90), log.read_text()
    finally:
        stop(process)


def login(
    world: DatastoreWorld, action: str, password: str, old_password: str = "", old_vm: str = "vm"
) -> subprocess.CompletedProcess[str]:
    """The program's DatastoreLogin provider, run in the VM's network (where pulumi up would run on Vultr)."""
    props = {
        "host": world.vm.address, "port": D.POSTGRES_PORT, "database": D.DATABASE, "role": D.ROLE,
        "caPem": world.ca.read_text(), "password": password, "check": True, "timeoutSeconds": 60,
        "instanceId": "vm",
    }  # fmt: skip
    script = (
        "import json, sys\n"
        "from providers.datastore_login import DatastoreLoginProvider\n"
        "news = json.loads(sys.stdin.read())\n"
        f"if {action == 'create'!r}:\n"
        "    print(DatastoreLoginProvider().create(news).outs['checked'])\n"
        "else:\n"
        f"    olds = {{**news, 'password': {old_password!r}, 'checked': 'before', 'instanceId': {old_vm!r}}}\n"
        "    print(DatastoreLoginProvider().update('k3s', olds, news).outs['checked'])\n"
    )
    return world.vm.run([sys.executable, "-c", script], input=json.dumps(props), cwd=REPO, timeout=180)


def test_the_login_check_passes_and_the_password_changes_in_place(world: DatastoreWorld) -> None:
    old = world.endpoint.split("@")[0].rsplit(":", 1)[1]
    checked = login(world, "create", old)
    assert checked.returncode == 0, checked.stderr
    assert "role k3s logged in over TLS (verify-full)" in checked.stdout

    new = "rotated0password0with0letters0and0digits"
    rotated = login(world, "update", new, old_password=old)
    assert rotated.returncode == 0, rotated.stderr
    assert login(world, "create", new).returncode == 0
    refused = login(world, "create", old)
    assert refused.returncode != 0
    assert old not in refused.stderr + refused.stdout  # the message never repeats a password
    back = login(world, "update", old, old_password=new)  # as it was, for the steps after this one
    assert back.returncode == 0, back.stderr


def test_a_new_vm_is_logged_in_to_and_nothing_is_altered_on_it(world: DatastoreWorld) -> None:
    """A new VM (the instance made again) holds the password of now, which cloud-init set: the login waits for it
    and logs in, and does not try to change the password with the old one, which the new VM never had."""
    current = world.endpoint.split("@")[0].rsplit(":", 1)[1]
    renewed = login(world, "update", current, old_password="a0password0the0new0vm0never0had", old_vm="gone")
    assert renewed.returncode == 0, renewed.stderr
    assert "role k3s logged in over TLS (verify-full)" in renewed.stdout


def test_only_root_may_ask_the_metadata_service(world: DatastoreWorld) -> None:
    """The metadata service serves the user data (its TLS key, the dump keys) to whoever asks: a stand-in answers
    at its address in the VM's network, and only root gets an answer."""
    assert world.ssh(f"systemctl is-active {D.METADATA_UNIT}").stdout.strip() == "active"
    ask = f"curl -sS -m 5 http://{D.METADATA_ADDRESS}/latest/user-data"
    assert world.ssh(ask).stdout.strip() == METADATA_STAND_IN
    for user in ("postgres", "nobody"):
        refused = world.ssh(f"runuser -u {user} -- {ask}", check=False)
        assert refused.returncode != 0, f"{user} got an answer: {refused.stdout}"
        assert METADATA_STAND_IN not in refused.stdout


def test_a_dump_goes_to_the_bucket_and_restores_with_the_same_rows(world: DatastoreWorld) -> None:
    unit = D.dump_unit("hourly")
    for _ in range(3):
        world.ssh(f"systemctl start {unit}")
        assert world.ssh(f"systemctl show -p Result --value {unit}").stdout.strip() == "success"
        world.ssh("sleep 1")  # dumps are named by the second
    dumps = sorted(key for key in world.s3.list_objects(BUCKET) if key.startswith(f"{PREFIX}hourly/"))
    assert len(dumps) == 2, dumps  # keep.hourly is 2: the oldest was pruned

    latest = dumps[-1].split("/")[-1]
    # As the README says to restore, into a database that the k3s role owns, as a new VM has it.
    world.ssh(
        f"set -euo pipefail; set -a; . {D.DUMPS_ENV}; set +a; "
        f"runuser -u postgres -- createdb -O {D.ROLE} restored; "
        f"rclone cat dumps:{BUCKET}/{PREFIX}hourly/{latest} "
        f"| runuser -u postgres -- pg_restore --no-owner --role={D.ROLE} -d restored"
    )
    count = "SELECT count(*), max(id) FROM kine"
    original = world.ssh(f"runuser -u postgres -- psql -tA -d {D.DATABASE} -c '{count}'").stdout
    restored = world.ssh(f"runuser -u postgres -- psql -tA -d restored -c '{count}'").stdout
    assert restored == original
    assert int(original.split("|")[0]) > 0
    owner = "SELECT tableowner FROM pg_tables WHERE tablename = 'kine'"
    assert world.ssh(f'runuser -u postgres -- psql -tA -d restored -c "{owner}"').stdout.strip() == D.ROLE
    pings = world.pings.of("k3s datastore dev dumps (dev.ephemeros.test)")
    assert [ping["kind"] for ping in pings] == ["start", "0"] * 3  # each run: /start, then its exit status
    assert "hourly dump k3s-" in pings[-1]["body"]


def test_the_restore_check_restores_the_newest_dump_and_pings_its_check(world: DatastoreWorld) -> None:
    service = f"{D.RESTORE_CHECK}.service"
    assert world.ssh(f"systemctl is-enabled {D.RESTORE_CHECK}.timer").stdout.strip() == "enabled"
    world.ssh(f"systemctl start {service}")
    assert world.ssh(f"systemctl show -p Result --value {service}").stdout.strip() == "success"
    databases = "SELECT datname FROM pg_database"
    scratch = f'runuser -u postgres -- psql -tA -c "{databases}"'
    assert D.RESTORE_CHECK_DATABASE not in world.ssh(scratch).stdout.split()  # dropped
    count = "SELECT count(*) FROM kine"
    rows = world.ssh(f"runuser -u postgres -- psql -tA -d {D.DATABASE} -c '{count}'").stdout
    newest = sorted(key for key in world.s3.list_objects(BUCKET) if key.startswith(PREFIX))[-1]
    check = "k3s datastore dev restore check (dev.ephemeros.test)"
    pings = world.pings.of(check)
    assert [ping["kind"] for ping in pings] == ["start", "0"]
    restored = newest.removeprefix(PREFIX)
    assert f"restored {restored}: its kine table holds {int(rows)} rows" in pings[-1]["body"]

    # A newest dump that does not restore fails the check, and says so to its heartbeat check.
    broken = f"{PREFIX}hourly/k3s-29991231T235959Z.dump"
    world.ssh(f"set -a; . {D.DUMPS_ENV}; set +a; echo not-a-dump | rclone rcat dumps:{BUCKET}/{broken}")
    failed = world.ssh(f"systemctl start {service}", check=False)
    assert failed.returncode != 0
    assert world.ssh(f"systemctl show -p Result --value {service}").stdout.strip() == "exit-code"
    assert D.RESTORE_CHECK_DATABASE not in world.ssh(scratch).stdout.split()
    last = world.pings.of(check)[-1]
    assert last["kind"] not in ("start", "0", "success")
    assert "pg_restore" in last["body"]
    world.ssh(f"set -a; . {D.DUMPS_ENV}; set +a; rclone deletefile dumps:{BUCKET}/{broken}")
