"""A real etcd cluster on loopback, TLS everywhere, with the operations a member's loss and rejoin need."""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.certificates import CertKey, https_request, issue
from harness.processes import built_tool, free_ports, log_tail, stop

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
QUOTA_BACKEND_BYTES = 128 * 1024 * 1024


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

    def rename(self, name: str, new_name: str) -> None:
        """Call the stopped member `name` `new_name` from now on, as k3s names a member anew when its data is gone.

        It keeps its URLs, certificates and directory; start it (start_existing) after `member_add(new_name)`.
        """
        self._require_stopped(name)
        if new_name in self.members:
            raise ValueError(f"etcd member {new_name} exists")
        self.members[new_name] = replace(self.members.pop(name), name=new_name, process=None)

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
    members: int | None = None,
    tmp: Path | None = None,
    member_certs: Mapping[str, MemberCerts] | None = None,
    timeout: float = 60,
    names: Sequence[str] | None = None,
) -> Iterator[EtcdCluster]:
    """Start etcd members as one new cluster, and wait until all are healthy.

    The members are `names` (say `server0-1a2b3c4d`, as k3s names them), or else `members` (default 3) members
    named etcd-1, etcd-2, ... Each member's certificates come from `member_certs` or are signed here with `ca` (whose
    certificates may be chains, leaf CA first, as k3s's CA files are); the directory is made under `tmp` (default:
    the system's) and removed at the end, with every member stopped.
    """
    if names is None:
        names = [f"etcd-{i}" for i in range(1, (members or 3) + 1)]
    elif not names or len(set(names)) != len(names) or members not in (None, len(names)):
        raise ValueError(f"etcd member names {list(names)} must be distinct, and as many as members={members}")
    built_tool("etcd")
    built_tool("etcdctl")
    directory = Path(tempfile.mkdtemp(prefix="ephemeros-etcd-", dir=tmp))
    (directory / "server-ca.crt").write_bytes(ca.server.cert)
    (directory / "peer-ca.crt").write_bytes(ca.peer.cert)
    root_client = issue(ca.server, "root", client=True).write(directory, "root-client")
    cluster = EtcdCluster(directory, ca, secrets.token_hex(8), {}, directory / "server-ca.crt", root_client)
    ports = free_ports(2 * len(names))
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
