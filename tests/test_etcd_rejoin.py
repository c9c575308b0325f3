"""ephemeros-etcd-rejoin against a real three-member etcd cluster whose members are named as k3s names them and
whose certificates come from the program's own PKI: a wiped server's stale member removed through the survivors
without losing quorum, k3s's join after it, and the refusals."""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.certificates import CertKey
from harness.etcd_cluster import EtcdCA, EtcdCluster, EtcdHealth, etcd_cluster
from harness.processes import free_ports, write_private
from harness.stack import REPO
from pki import k3s
from pki.x509 import Issuer, certificate, chain, new_key

pytestmark = pytest.mark.slow

REJOIN = REPO / ".tools/nodetools/ephemeros-etcd-rejoin"
CLUSTER = "rejoin"
SERVERS = ("server0", "server1", "server2")


@dataclass(frozen=True)
class ProgramPki:
    etcd: EtcdCA  # the etcd/peer and etcd/server leaf CAs: each its chain (leaf CA, intermediate, root) and key
    server_ca: Path  # the etcd/server CA chain, as k3s reads it
    client: tuple[Path, Path]  # the tool's etcd client certificate and key (pki.k3s.etcd_client_spec)


@pytest.fixture(scope="module")
def rejoin_tool() -> Path:
    subprocess.run([str(REPO / "nodetools/build.sh")], check=True)
    return REJOIN


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ProgramPki:
    """The PKI as components/cluster_pki.py makes it: the root signs the intermediate, which signs the etcd leaf
    CAs; the etcd/server CA signs the tool's client certificate."""
    directory = tmp_path_factory.mktemp("pki")
    root_key = new_key(k3s.ROOT_KEY)
    root = certificate(k3s.root_spec(CLUSTER, 1), root_key, None)
    intermediate_key = new_key(k3s.INTERMEDIATE_KEY)
    intermediate = certificate(k3s.intermediate_spec(CLUSTER, 1), intermediate_key, Issuer(root, root_key))
    leaves: dict[str, Issuer] = {}
    for kind in ("etcd/peer", "etcd/server"):
        key = new_key(k3s.LEAF_CA_KEY)
        leaves[kind] = Issuer(
            certificate(k3s.leaf_ca_spec(kind, CLUSTER, 1), key, Issuer(intermediate, intermediate_key)), key
        )
    chains = {
        kind: CertKey(chain(leaf.certificate_pem, intermediate, root).encode(), leaf.key_pem.encode())
        for kind, leaf in leaves.items()
    }
    server_ca = directory / "etcd-server-ca.crt"
    server_ca.write_bytes(chains["etcd/server"].cert)
    client_key = new_key(k3s.CLIENT_KEY)
    client = certificate(k3s.etcd_client_spec(CLUSTER), client_key, leaves["etcd/server"])
    etcd = EtcdCA(chains["etcd/peer"], chains["etcd/server"])
    return ProgramPki(etcd, server_ca, write_pair(directory, "etcd-client", client, client_key))


def write_pair(directory: Path, stem: str, cert: str, key: str) -> tuple[Path, Path]:
    (directory / f"{stem}.crt").write_text(cert)
    write_private(directory / f"{stem}.key", key.encode())
    return directory / f"{stem}.crt", directory / f"{stem}.key"


def member_name(node: str) -> str:
    """A member name as k3s makes one: the node name and 8 random hex digits."""
    return f"{node}-{secrets.token_hex(4)}"


@pytest.fixture
def cluster(pki: ProgramPki, tmp_path: Path) -> Iterator[EtcdCluster]:
    with etcd_cluster(pki.etcd, tmp=tmp_path, names=[member_name(node) for node in SERVERS]) as running:
        yield running


def member_of(cluster: EtcdCluster, node: str) -> str:
    return next(name for name in cluster.members if name.rsplit("-", 1)[0] == node)


def address(cluster: EtcdCluster, name: str) -> str:
    """host:port of a member's client URL, as the tool's -peers takes it."""
    return cluster.members[name].client_url.removeprefix("https://")


def rejoin(
    tool: Path, node: str, peers: list[str], client: tuple[Path, Path], server_ca: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    command = [
        str(tool),
        f"-name={node}",
        f"-peers={','.join(peers)}",
        f"-cacert={server_ca}",
        f"-cert={client[0]}",
        f"-key={client[1]}",
        "-timeout=1s",
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def lose(cluster: EtcdCluster, node: str) -> tuple[str, list[str]]:
    """Power `node`'s member off and wipe its data, as a reboot of a diskless server; returns its member name and
    the survivors' member names, once they are healthy."""
    stale = member_of(cluster, node)
    cluster.kill(stale)
    cluster.wipe(stale)
    survivors = [name for name in cluster.members if name != stale]
    cluster.wait_healthy(survivors)
    return stale, survivors


class HealthWatch:
    """Samples the cluster's health in a thread: once before the block runs, all along, and once after."""

    def __init__(self, cluster: EtcdCluster) -> None:
        self.cluster = cluster
        self.samples: list[EtcdHealth] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.cluster.health())
            time.sleep(0.05)

    def __enter__(self) -> HealthWatch:
        self.samples.append(self.cluster.health())
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.cluster.health())


def test_removes_the_stale_member_and_k3s_joins_again(
    rejoin_tool: Path, pki: ProgramPki, cluster: EtcdCluster, tmp_path: Path
) -> None:
    cluster.put("/registry/before-reboot", "kept")
    stale, survivors = lose(cluster, "server2")
    peers = [address(cluster, name) for name in survivors]
    dropin = tmp_path / "config.yaml.d/50-etcd.yaml"

    # What k3s would refuse: a member of node name server2 under another name than the one it makes anew.
    assert [m.name for m in cluster.member_list() if m.name.rsplit("-", 1)[0] == "server2"] == [stale]
    stale_id = cluster.member_id(stale)
    dry = rejoin(rejoin_tool, "server2", peers, pki.client, pki.server_ca, "-dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f'name="{stale}" peer URLs={cluster.members[stale].peer_url} (voting): blocks the join' in dry.stderr
    assert "its node name is server2 (k3s: duplicate node name found)" in dry.stderr
    assert f'would remove member {stale_id:x} name="{stale}"' in dry.stderr
    assert stale in {m.name for m in cluster.member_list()}
    assert not dropin.exists()

    with HealthWatch(cluster) as watch:
        done = rejoin(rejoin_tool, "server2", peers, pki.client, pki.server_ca, f"-dropin={dropin}", "-wait=30s")
    assert done.returncode == 0, done.stderr
    assert f'removing member {stale_id:x} name="{stale}"' in done.stderr
    assert stale not in {m.name for m in cluster.member_list()}
    assert len(cluster.member_list()) == 2
    assert dropin.read_text() == "server: https://127.0.0.1:6443\n"
    assert dropin.stat().st_mode & 0o777 == 0o600
    assert len(watch.samples) >= 3
    assert all(sample.quorum for sample in watch.samples), watch.samples
    assert "-----BEGIN" not in done.stderr + done.stdout

    # What k3s does next: add itself as a learner under a new member name, start etcd into it, get promoted.
    joined = member_name("server2")
    cluster.rename(stale, joined)
    cluster.member_add(joined, learner=True)
    cluster.start_existing(joined)
    cluster.promote(joined)
    cluster.wait_healthy(list(cluster.members))
    members = cluster.member_list()
    assert sorted(m.name for m in members) == sorted(cluster.members)
    assert not any(m.is_learner for m in members)
    assert cluster.get("/registry/before-reboot", member=joined, serializable=True) == "kept"


def test_a_client_certificate_of_another_ca_removes_nothing(
    rejoin_tool: Path, pki: ProgramPki, cluster: EtcdCluster, tmp_path: Path
) -> None:
    other_key = new_key("ec-p256")
    other_ca = certificate(k3s.leaf_ca_spec("etcd/server", "another", 1), other_key, None)
    client_key = new_key(k3s.CLIENT_KEY)
    wrong_cert = certificate(k3s.etcd_client_spec("another"), client_key, Issuer(other_ca, other_key))
    wrong = write_pair(tmp_path, "wrong-client", wrong_cert, client_key)
    _, survivors = lose(cluster, "server2")
    before = cluster.member_list()
    dropin = tmp_path / "50-etcd.yaml"

    peers = [address(cluster, name) for name in survivors]
    for extra in ((), ("-may-init",)):
        done = rejoin(rejoin_tool, "server2", peers, wrong, pki.server_ca, f"-dropin={dropin}", "-wait=1s", *extra)
        assert done.returncode == 1, done.stderr
        assert "TLS: the peer refuses the client certificate" in done.stderr, done.stderr
        assert "remote error: tls: certificate required" in done.stderr
        assert not dropin.exists()
    assert "not starting a new cluster" in done.stderr
    assert cluster.member_list() == before


def test_a_live_member_of_the_same_name_is_not_removed(
    rejoin_tool: Path, pki: ProgramPki, cluster: EtcdCluster, tmp_path: Path
) -> None:
    before = cluster.member_list()
    dropin = tmp_path / "50-etcd.yaml"
    live = member_of(cluster, "server1")
    # Through another member, which finds server1's member answering; and through server1's member itself.
    for peer in (member_of(cluster, "server0"), live):
        done = rejoin(rejoin_tool, "server1", [address(cluster, peer)], pki.client, pki.server_ca, f"-dropin={dropin}")
        assert done.returncode == 1, done.stderr
        assert f"refusing to remove member {cluster.member_id(live):x}" in done.stderr
        assert "so it is alive and not this node's stale member" in done.stderr
    assert cluster.member_list() == before
    assert not dropin.exists()


def test_no_peer_reachable(rejoin_tool: Path, pki: ProgramPki, tmp_path: Path) -> None:
    peers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    dropin = tmp_path / "50-etcd.yaml"

    started = time.monotonic()
    done = rejoin(rejoin_tool, "server1", peers, pki.client, pki.server_ca, f"-dropin={dropin}", "-wait=3s")
    assert done.returncode == 1
    assert time.monotonic() - started >= 3
    assert "no peer answered within 3s" in done.stderr
    assert all(f"{peer} (unreachable:" in done.stderr for peer in peers), done.stderr
    assert not dropin.exists()

    may_init = ("-may-init", f"-dropin={dropin}", "-wait=1s")
    done = rejoin(rejoin_tool, "server0", peers, pki.client, pki.server_ca, *may_init)
    assert done.returncode == 0, done.stderr
    assert dropin.read_text() == "cluster-init: true\n"
    assert dropin.stat().st_mode & 0o777 == 0o600


def test_go_checks() -> None:
    """The program's own unit tests (what k3s's join stops at, the quorum arithmetic), vet and gofmt."""
    directory = REPO / "nodetools/etcdrejoin"
    env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false"}
    for command in (["go", "vet", "./..."], ["go", "test", "./..."]):
        done = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    unformatted = subprocess.run(["gofmt", "-l", "."], cwd=directory, capture_output=True, text=True, check=True)
    assert unformatted.stdout == ""
