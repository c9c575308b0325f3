"""A real etcd cluster on loopback, TLS everywhere, with the operations a member's loss and rejoin need.

Also the small pieces the other server harnesses share: where the built test tools live, free ports, stopping a
process, a test PKI (ECDSA P-256, as k3s makes its own) and an HTTPS request that presents a client certificate.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.stack import REPO

TESTTOOLS_BIN = REPO / ".tools/testtools/bin"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
QUOTA_BACKEND_BYTES = 128 * 1024 * 1024


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


def log_tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class CertKey:
    """A certificate (or a leaf followed by its chain) and its private key, both PEM."""

    cert: bytes
    key: bytes

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write `stem.crt` and `stem.key` (mode 0600) into `directory`; returns their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert.write_bytes(self.cert)
        write_private(key, self.key)
        return cert, key


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to a new file of mode 0600 (replacing any file there)."""
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(data)


def new_private_key() -> bytes:
    """A new ECDSA P-256 private key, PEM (PKCS #8)."""
    return _key_pem(ec.generate_private_key(ec.SECP256R1()))


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: CertKey | None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]],
    days: int,
) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    if issuer is None:
        issuer_name, signing_key = subject, key
    else:
        issuer_name = x509.load_pem_x509_certificate(issuer.cert).subject
        loaded = serialization.load_pem_private_key(issuer.key, password=None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        signing_key = loaded
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key())
        builder = builder.add_extension(aki, critical=False)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def new_ca(common_name: str, parent: CertKey | None = None, days: int = 3650) -> CertKey:
    """A CA: self-signed, or an intermediate signed by `parent` (its PEM then holds only its own certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (usage, True),
    ]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return CertKey(_certificate(subject, key, parent, extensions, days), _key_pem(key))


def issue(
    ca: CertKey,
    common_name: str,
    *,
    organizations: Sequence[str] = (),
    hosts: Sequence[str] = (),
    server: bool = False,
    client: bool = True,
    days: int = 365,
) -> CertKey:
    """A leaf certificate signed by `ca`; `hosts` (IP addresses or DNS names) become its SANs."""
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    subject = x509.Name([*names, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.KeyUsage(True, False, True, False, False, False, False, False, False), True),
        (x509.ExtendedKeyUsage(usages), False),
    ]
    if hosts:
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        extensions.append((x509.SubjectAlternativeName(sans), False))
    return CertKey(_certificate(subject, key, ca, extensions, days), _key_pem(key))


def https_request(
    url: str,
    ca_file: Path,
    client: tuple[Path, Path] | None = None,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    body: bytes | None = None,
) -> tuple[int, bytes]:
    """Send a request to `url` trusting only `ca_file`, presenting the certificate and key files `client` if given."""
    context = ssl.create_default_context(cafile=str(ca_file))
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    parts = urlsplit(url)
    connection = http.client.HTTPSConnection(parts.hostname or "", parts.port, context=context, timeout=10)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass(frozen=True)
class EtcdCA:
    """The two CAs of an etcd cluster: one for members talking to each other, one for clients talking to members."""

    peer: CertKey
    server: CertKey


@dataclass(frozen=True)
class MemberCerts:
    peer: CertKey  # for the peer port and the connections a member makes to its peers: server and client auth
    server: CertKey  # for the client port: server auth


@dataclass
class EtcdMember:
    name: str
    client_url: str
    peer_url: str
    data_dir: Path
    log_path: Path
    certs_dir: Path
    process: subprocess.Popen[bytes] | None = None
    log_start: int = 0  # where the log of the latest start begins

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def last_log(self) -> str:
        """What the member logged since it was last started."""
        with self.log_path.open("rb") as log:
            log.seek(self.log_start)
            return log.read().decode(errors="replace")


@dataclass(frozen=True)
class MemberInfo:
    """One entry of `etcdctl member list`; `name` is empty for a member added but not started yet."""

    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool


@dataclass(frozen=True)
class EtcdHealth:
    healthy: dict[str, bool]  # member name -> whether its /health answered true
    quorum: bool  # some member served a linearizable read, which takes a majority of the voting members

    @property
    def healthy_names(self) -> list[str]:
        return sorted(name for name, ok in self.healthy.items() if ok)


class EtcdStartError(RuntimeError):
    """An etcd member exited or did not join in time; `log` is what it logged in this attempt."""

    def __init__(self, name: str, reason: str, log: str) -> None:
        super().__init__(f"etcd member {name} {reason}:\n{log_tail(log)}")
        self.log = log


@dataclass(frozen=True)
class EtcdCluster:
    directory: Path
    ca: EtcdCA
    token: str
    members: dict[str, EtcdMember]
    ca_file: Path  # the server CA's certificate, to trust the client ports
    root_client: tuple[Path, Path]  # a client certificate and key, for the harness and `etcdctl`

    def endpoints(self, names: Sequence[str] | None = None) -> list[str]:
        """Client URLs of `names`, or of the members running now."""
        chosen = names if names is not None else [m.name for m in self.members.values() if m.running]
        return [self.members[n].client_url for n in chosen]

    def client_cert(self, common_name: str = "etcd-client", organizations: Sequence[str] = ()) -> CertKey:
        """A client certificate signed by the server CA, which every member's client port accepts."""
        return issue(self.ca.server, common_name, organizations=organizations, client=True)

    def etcdctl(
        self, *args: str, endpoints: Sequence[str] | None = None, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run the built etcdctl with the TLS flags, against `endpoints` (default: the running members)."""
        cert, key = self.root_client
        command = [
            str(built_tool("etcdctl")),
            f"--endpoints={','.join(endpoints if endpoints is not None else self.endpoints())}",
            f"--cacert={self.ca_file}",
            f"--cert={cert}",
            f"--key={key}",
            "--dial-timeout=3s",
            "--command-timeout=10s",
            *args,
        ]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=timeout)

    def member_list(self) -> list[MemberInfo]:
        return [_member_info(m) for m in json.loads(self.etcdctl("member", "list", "-w", "json").stdout)["members"]]

    def member_id(self, name: str) -> int:
        """The ID the cluster knows `name` by, matched on its name or, before it has started, its peer URL."""
        peer_url = self.members[name].peer_url
        for info in self.member_list():
            if info.name == name or peer_url in info.peer_urls:
                return info.id
        raise KeyError(name)

    def member_remove(self, member_id: int) -> None:
        self.etcdctl("member", "remove", format(member_id, "x"))

    def member_add(self, name: str, learner: bool = False, timeout: float = 20) -> int:
        """`member add` for `name` at its peer URL; returns the new ID.

        Retried until `timeout` on two refusals: "etcdserver: unhealthy cluster" (for 5 s after a member was
        lost, a majority must have stayed connected), and "etcdserver: member not found" (the new ID hashes the
        peer URLs and the current second, so re-adding a URL in the second it was last added yields a removed ID).
        """
        args = ["member", "add", name, f"--peer-urls={self.members[name].peer_url}", "-w", "json"]
        deadline = time.monotonic() + timeout
        while True:
            done = self.etcdctl(*args, *(["--learner"] if learner else []), check=False)
            if done.returncode == 0:
                member_id: int = json.loads(done.stdout)["member"]["ID"]
                return member_id
            retry = "etcdserver: unhealthy cluster" in done.stderr or "etcdserver: member not found" in done.stderr
            if not retry or time.monotonic() > deadline:
                raise RuntimeError(f"etcdctl member add {name} failed:\n{done.stderr}")
            time.sleep(0.5)

    def promote(self, name: str, timeout: float = 30) -> None:
        """Promote the learner `name` to a voting member, retrying while it is not yet in sync with the leader."""
        member_id = format(self.member_id(name), "x")
        deadline = time.monotonic() + timeout
        while (done := self.etcdctl("member", "promote", member_id, check=False)).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcdctl member promote {name} failed:\n{done.stderr}")
            time.sleep(0.5)

    def leader(self) -> str:
        """The name of the member that leads now."""
        statuses = json.loads(self.etcdctl("endpoint", "status", "-w", "json").stdout)
        leader_id = statuses[0]["Status"]["leader"]
        return next(info.name for info in self.member_list() if info.id == leader_id)

    def move_leader(self, name: str) -> None:
        """Hand the leadership to `name`."""
        if (current := self.leader()) != name:
            target = format(self.member_id(name), "x")
            self.etcdctl("move-leader", target, endpoints=self.endpoints([current]))

    def health(self) -> EtcdHealth:
        """Each member's /health, a linearizable read through that member (so only true with quorum)."""
        healthy = {m.name: m.running and self._member_healthy(m) for m in self.members.values()}
        return EtcdHealth(healthy, any(healthy.values()))

    def wait_healthy(self, names: Sequence[str], timeout: float = 30) -> EtcdHealth:
        """Wait until all of `names` are healthy (after a leader's loss an election takes a second or two)."""
        deadline = time.monotonic() + timeout
        while not all((health := self.health()).healthy[n] for n in names):
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd members {', '.join(names)} not healthy after {timeout:.0f}s: {health}")
            time.sleep(0.2)
        return health

    def _member_healthy(self, member: EtcdMember, serializable: bool = False) -> bool:
        url = f"{member.client_url}/health{'?serializable=true' if serializable else ''}"
        try:
            status, body = https_request(url, self.ca_file, self.root_client)
        except OSError:
            return False
        return status == 200 and json.loads(body).get("health") == "true"

    def put(self, key: str, value: str, member: str | None = None) -> None:
        self.etcdctl("put", key, value, endpoints=None if member is None else self.endpoints([member]))

    def get(self, key: str, member: str | None = None, serializable: bool = False) -> str | None:
        """The value of `key`; `serializable` reads the member's own copy without asking the leader."""
        args = ["get", key, "-w", "json", f"--consistency={'s' if serializable else 'l'}"]
        answer = json.loads(self.etcdctl(*args, endpoints=None if member is None else self.endpoints([member])).stdout)
        kvs = answer.get("kvs", [])
        return base64.b64decode(kvs[0]["value"]).decode() if kvs else None

    def kill(self, name: str) -> None:
        """SIGKILL the member, as a power loss would."""
        process = self.members[name].process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def wipe(self, name: str) -> None:
        """Delete the member's data directory, as a node that lost its disk; the member must be stopped."""
        self._require_stopped(name)
        shutil.rmtree(self.members[name].data_dir, ignore_errors=True)

    def start_existing(self, name: str, timeout: float = 60) -> None:
        """Start `name` with --initial-cluster-state=existing and the cluster's current member list, as k3s joins.

        The list's entry without a name (added, not started) at `name`'s peer URL is taken as `name`. Waits until
        the member has joined (has a leader; a learner serves no linearizable read), else raises EtcdStartError.
        """
        self._require_stopped(name)
        member = self.members[name]
        peers = []
        for info in self.member_list():
            peer_name = info.name or (name if member.peer_url in info.peer_urls else "")
            peers += [f"{peer_name}={url}" for url in info.peer_urls]
        self._launch(member, ",".join(peers), "existing")
        self._wait_joined(member, timeout)

    def start_new(self, name: str, timeout: float = 60) -> None:
        """Start `name` with the flags of its first boot: --initial-cluster-state=new and the first member list."""
        self._require_stopped(name)
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members.values())
        self._launch(self.members[name], initial, "new")
        self._wait_joined(self.members[name], timeout)

    def _require_stopped(self, name: str) -> None:
        if self.members[name].running:
            raise RuntimeError(f"etcd member {name} is running")

    def _launch(self, member: EtcdMember, initial_cluster: str, state: str) -> None:
        certs = member.certs_dir
        command = [
            str(built_tool("etcd")),
            f"--name={member.name}",
            f"--data-dir={member.data_dir}",
            f"--listen-client-urls={member.client_url}",
            f"--advertise-client-urls={member.client_url}",
            f"--listen-peer-urls={member.peer_url}",
            f"--initial-advertise-peer-urls={member.peer_url}",
            f"--initial-cluster={initial_cluster}",
            f"--initial-cluster-state={state}",
            f"--initial-cluster-token={self.token}",
            f"--cert-file={certs / 'server.crt'}",
            f"--key-file={certs / 'server.key'}",
            f"--trusted-ca-file={self.directory / 'server-ca.crt'}",
            "--client-cert-auth",
            f"--peer-cert-file={certs / 'peer.crt'}",
            f"--peer-key-file={certs / 'peer.key'}",
            f"--peer-trusted-ca-file={self.directory / 'peer-ca.crt'}",
            "--peer-client-cert-auth",
            f"--quota-backend-bytes={QUOTA_BACKEND_BYTES}",
            "--unsafe-no-fsync",  # test data only: spares the shared disk
        ]
        with member.log_path.open("ab") as log:
            log.write(f"--- {' '.join(command)}\n".encode())
            member.log_start = log.tell()
            member.process = subprocess.Popen(command, stdout=log, stderr=log)

    def _wait_joined(self, member: EtcdMember, timeout: float, serializable: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while not self._member_healthy(member, serializable):
            assert member.process is not None
            if member.process.poll() is not None:
                raise EtcdStartError(member.name, f"exited with {member.process.returncode}", member.last_log())
            if time.monotonic() > deadline:
                raise EtcdStartError(member.name, f"had not joined after {timeout:.0f}s", member.last_log())
            time.sleep(0.2)

    def stop_all(self) -> None:
        for member in self.members.values():
            if member.process is not None:
                stop(member.process)


def _member_info(listed: dict[str, Any]) -> MemberInfo:
    return MemberInfo(
        listed["ID"],
        listed.get("name", ""),
        tuple(listed.get("peerURLs", ())),
        tuple(listed.get("clientURLs", ())),
        bool(listed.get("isLearner", False)),
    )


@contextmanager
def etcd_cluster(
    ca: EtcdCA,
    members: int = 3,
    tmp: Path | None = None,
    member_certs: Mapping[str, MemberCerts] | None = None,
    timeout: float = 60,
) -> Iterator[EtcdCluster]:
    """Start `members` etcd members named etcd-1, etcd-2, ... as one new cluster, and wait until all are healthy.

    Each member's certificates come from `member_certs` or are signed here with `ca`; the directory is made under
    `tmp` (default: the system's) and removed at the end, with every member stopped.
    """
    built_tool("etcd")
    built_tool("etcdctl")
    directory = Path(tempfile.mkdtemp(prefix="ephemeros-etcd-", dir=tmp))
    (directory / "server-ca.crt").write_bytes(ca.server.cert)
    (directory / "peer-ca.crt").write_bytes(ca.peer.cert)
    root_client = issue(ca.server, "root", client=True).write(directory, "root-client")
    names = [f"etcd-{i}" for i in range(1, members + 1)]
    cluster = EtcdCluster(directory, ca, secrets.token_hex(8), {}, directory / "server-ca.crt", root_client)
    ports = free_ports(2 * members)
    try:
        for index, name in enumerate(names):
            member = EtcdMember(
                name,
                f"https://127.0.0.1:{ports[2 * index]}",
                f"https://127.0.0.1:{ports[2 * index + 1]}",
                directory / name / "data",
                directory / name / "etcd.log",
                directory / name / "certs",
            )
            certs = (member_certs or {}).get(name) or MemberCerts(
                issue(ca.peer, name, hosts=LOOPBACK_HOSTS, server=True, client=True),
                issue(ca.server, name, hosts=LOOPBACK_HOSTS, server=True, client=True),
            )
            certs.peer.write(member.certs_dir, "peer")
            certs.server.write(member.certs_dir, "server")
            cluster.members[name] = member
        initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster.members.values())
        for member in cluster.members.values():
            cluster._launch(member, initial, "new")
        for member in cluster.members.values():
            cluster._wait_joined(member, timeout, serializable=False)
        yield cluster
    finally:
        cluster.stop_all()
        shutil.rmtree(directory, ignore_errors=True)
