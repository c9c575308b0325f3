"""The server harnesses start the real servers on loopback, and can host the scenarios later tests need."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.certificates import CertKey, https_request, issue, new_ca, new_private_key
from harness.etcd_cluster import LOOPBACK_HOSTS, EtcdCA, EtcdCluster, EtcdStartError, MemberCerts, etcd_cluster
from harness.kube_apiserver import SERVICE_ACCOUNT_ISSUER, KubeApiServer, kube_apiserver, kubectl, write_kubeconfig
from harness.processes import built_tool
from harness.s3_server import S3Error, s3_server

pytestmark = pytest.mark.slow

SURVIVORS = ["etcd-1", "etcd-2"]
EVERYONE = [*SURVIVORS, "etcd-3"]


@pytest.fixture
def etcd() -> Iterator[EtcdCluster]:
    with etcd_cluster(EtcdCA(new_ca("etcd-peer-ca"), new_ca("etcd-server-ca"))) as cluster:
        yield cluster


def etcdctl_as(client: tuple[Path, Path], endpoint: str, ca_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(built_tool("etcdctl")), f"--endpoints={endpoint}", f"--cacert={ca_file}", f"--cert={client[0]}",
               f"--key={client[1]}", "--dial-timeout=2s", "--command-timeout=2s", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_etcd_cluster_requires_client_certificates(tmp_path: Path) -> None:
    ca = EtcdCA(new_ca("etcd-peer-ca"), new_ca("etcd-server-ca"))
    premade = MemberCerts(
        issue(ca.peer, "premade-peer", hosts=LOOPBACK_HOSTS, server=True, client=True),
        issue(ca.server, "premade-server", hosts=LOOPBACK_HOSTS, server=True),
    )
    with etcd_cluster(ca, tmp=tmp_path, member_certs={"etcd-1": premade}) as etcd:
        assert etcd.directory.parent == tmp_path
        assert (etcd.members["etcd-1"].certs_dir / "server.crt").read_bytes() == premade.server.cert
        assert sorted(m.name for m in etcd.member_list()) == EVERYONE
        assert all(url.startswith("https://127.0.0.1:") for m in etcd.member_list() for url in m.peer_urls)
        assert etcd.health().healthy_names == EVERYONE

        ours = etcd.client_cert("our-tool").write(tmp_path, "our-tool")
        put = etcdctl_as(ours, etcd.members["etcd-1"].client_url, etcd.ca_file, "put", "/from/our-tool", "yes")
        assert put.returncode == 0, put.stderr
        assert etcd.get("/from/our-tool", "etcd-3") == "yes"

        stranger = issue(new_ca("another-ca"), "stranger").write(tmp_path, "stranger")
        refused = etcdctl_as(stranger, etcd.members["etcd-2"].client_url, etcd.ca_file, "get", "/")
        assert refused.returncode != 0
        # The client sees the alert or a broken pipe, whichever comes first; the member says why it refused.
        assert "certificate signed by unknown authority" in etcd.members["etcd-2"].log_path.read_text()
        with pytest.raises((ssl.SSLError, ConnectionResetError)):  # no client certificate at all
            https_request(f"{etcd.members['etcd-1'].client_url}/health", etcd.ca_file)
    assert not etcd.directory.exists()
    assert not any(m.running for m in etcd.members.values())


def test_etcd_member_loses_its_disk_and_rejoins(etcd: EtcdCluster) -> None:
    """Member 3 (not the leader) dies with its disk: which restarts etcd refuses, and the sequences that work."""
    etcd.move_leader("etcd-1")
    etcd.put("/written/before", "the loss")
    etcd.kill("etcd-3")
    etcd.wipe("etcd-3")
    assert etcd.wait_healthy(SURVIVORS).quorum
    stale_id = etcd.member_id("etcd-3")

    # Its first boot's flags again (--initial-cluster-state=new): refused, the others know a member of that name.
    with pytest.raises(EtcdStartError) as refused:
        etcd.start_new("etcd-3")
    assert f"member {stale_id:x} has already been bootstrapped" in refused.value.log
    etcd.wipe("etcd-3")
    assert etcd.health().healthy_names == SURVIVORS

    # Same name and peer URL, `existing`, stale entry still there: it takes the stale ID back, and the leader, which
    # remembers how far that ID's log went, tells it to commit entries its empty log lacks; raft panics.
    with pytest.raises(EtcdStartError) as refused:
        etcd.start_existing("etcd-3")
    assert "is out of range [lastIndex(0)]. Was the raft log corrupted, truncated, or lost?" in refused.value.log
    etcd.wipe("etcd-3")
    assert etcd.health().healthy_names == SURVIVORS

    # Stale entry removed but no `member add`: refused, it is not in the member list it is given.
    etcd.member_remove(stale_id)
    with pytest.raises(EtcdStartError) as refused:
        etcd.start_existing("etcd-3")
    assert 'couldn\'t find local name \\"etcd-3\\" in the initial cluster configuration' in refused.value.log
    etcd.wipe("etcd-3")
    assert etcd.wait_healthy(SURVIVORS).quorum

    # The right way: remove (done), add, start with `existing`.
    new_id = etcd.member_add("etcd-3")
    etcd.start_existing("etcd-3")
    assert etcd.wait_healthy(EVERYONE).quorum
    assert {m.name: m.id for m in etcd.member_list()}["etcd-3"] == new_id != stale_id
    assert etcd.get("/written/before", "etcd-3", serializable=True) == "the loss"

    # As k3s does it: added as a learner, promoted once in sync.
    etcd.kill("etcd-3")
    etcd.wipe("etcd-3")
    etcd.member_remove(new_id)
    etcd.member_add("etcd-3", learner=True)
    etcd.start_existing("etcd-3")
    assert [m.is_learner for m in etcd.member_list() if m.name == "etcd-3"] == [True]
    etcd.promote("etcd-3")
    assert not any(m.is_learner for m in etcd.member_list())
    assert etcd.wait_healthy(EVERYONE).quorum
    etcd.put("/written/after", "the rejoin", member="etcd-3")
    assert etcd.get("/written/after", "etcd-1", serializable=True) == "the rejoin"


def test_etcd_stale_rejoin_goes_through_when_the_lost_member_led(etcd: EtcdCluster) -> None:
    """The same stale restart is accepted if the lost member was the leader: the new one knows nothing of its log."""
    etcd.move_leader("etcd-3")
    etcd.put("/written/before", "the loss")
    stale_id = etcd.member_id("etcd-3")
    etcd.kill("etcd-3")
    etcd.wipe("etcd-3")
    assert etcd.wait_healthy(SURVIVORS).quorum
    etcd.start_existing("etcd-3")
    assert etcd.member_id("etcd-3") == stale_id
    assert etcd.wait_healthy(EVERYONE).quorum
    assert etcd.get("/written/before", "etcd-3", serializable=True) == "the loss"


@dataclasses.dataclass(frozen=True)
class ApiPki:
    root: CertKey  # roots the serving certificate, through an intermediate
    client_ca: CertKey
    request_header_ca: CertKey
    service_account_key: bytes


@pytest.fixture(scope="module")
def api_pki() -> ApiPki:
    return ApiPki(new_ca("kube-root"), new_ca("client-ca"), new_ca("request-header-ca"), new_private_key())


@pytest.fixture(scope="module")
def apiserver(api_pki: ApiPki) -> Iterator[KubeApiServer]:
    intermediate = new_ca("server-ca", parent=api_pki.root)
    hosts = ["127.0.0.1", "localhost", "10.43.0.1", "kubernetes", "kubernetes.default.svc.cluster.local"]
    serving = issue(intermediate, "kube-apiserver", hosts=hosts, server=True, client=False)
    with kube_apiserver(
        client_ca=api_pki.client_ca.cert,
        request_header_ca=api_pki.request_header_ca.cert,
        service_account_key=api_pki.service_account_key,
        serving_cert=serving.cert + intermediate.cert,
        serving_key=serving.key,
        serving_ca=api_pki.root.cert,
        probe_client=issue(api_pki.client_ca, "readiness-probe"),
    ) as server:
        yield server


def kubeconfig_for(apiserver: KubeApiServer, api_pki: ApiPki, path: Path, user: str, *groups: str) -> Path:
    client = issue(api_pki.client_ca, user, organizations=groups)
    return write_kubeconfig(path, apiserver.url, api_pki.root.cert, client.cert, client.key)


def test_kube_apiserver_authenticates_client_certificates(
    apiserver: KubeApiServer, api_pki: ApiPki, tmp_path: Path
) -> None:
    admin = kubeconfig_for(apiserver, api_pki, tmp_path / "admin", "admin", "system:masters")
    assert admin.stat().st_mode & 0o777 == 0o600
    assert kubectl(admin, "get", "--raw", "/readyz").stdout == "ok"
    whoami = json.loads(kubectl(admin, "auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert (whoami["username"], whoami["groups"]) == ("admin", ["system:masters", "system:authenticated"])
    assert kubectl(admin, "create", "namespace", "harness").returncode == 0
    assert kubectl(admin, "get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}").stdout == "10.43.0.1"

    stranger = issue(new_ca("another-ca"), "admin", organizations=["system:masters"])
    refused = write_kubeconfig(tmp_path / "stranger", apiserver.url, api_pki.root.cert, stranger.cert, stranger.key)
    assert "Unauthorized" in kubectl(refused, "get", "namespaces").stderr


def test_kube_apiserver_authorizes_nodes_and_rbac(apiserver: KubeApiServer, api_pki: ApiPki, tmp_path: Path) -> None:
    node = kubeconfig_for(apiserver, api_pki, tmp_path / "node", "system:node:node0", "system:nodes")
    assert kubectl(node, "auth", "can-i", "get", "nodes/node0").stdout.strip() == "yes"  # the Node authorizer
    assert kubectl(node, "auth", "can-i", "get", "nodes").stdout.startswith("no - node 'node0' cannot read all nodes")
    assert kubectl(node, "auth", "can-i", "create", "namespaces").stdout.strip() == "no"
    nobody = kubeconfig_for(apiserver, api_pki, tmp_path / "nobody", "nobody")
    assert kubectl(nobody, "auth", "can-i", "get", "nodes/node0").stdout.strip() == "no"  # RBAC: nothing granted

    def create_node(name: str) -> subprocess.CompletedProcess[str]:
        return kubectl(node, "create", "-f", "-", input=json.dumps({"kind": "Node", "apiVersion": "v1",
                                                                   "metadata": {"name": name}}))  # fmt: skip

    assert create_node("node0").returncode == 0
    refused = create_node("node1")  # NodeRestriction: a node may only create its own Node
    assert 'is forbidden: node "node0" is not allowed to modify node "node1"' in refused.stderr


def test_kube_apiserver_trusts_the_front_proxy_headers(
    apiserver: KubeApiServer, api_pki: ApiPki, tmp_path: Path
) -> None:
    review = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode()
    url = f"{apiserver.url}/apis/authentication.k8s.io/v1/selfsubjectreviews"
    headers = {"Content-Type": "application/json", "X-Remote-User": "alice", "X-Remote-Uid": "1234",
               "X-Remote-Group": "developers", "X-Remote-Extra-Scopes": "dumps"}  # fmt: skip

    proxy = issue(api_pki.request_header_ca, "system:auth-proxy").write(tmp_path, "proxy")
    status, body = https_request(url, apiserver.ca_file, proxy, headers, "POST", review)
    assert status == 201, body
    assert json.loads(body)["status"]["userInfo"] == {
        "username": "alice",
        "uid": "1234",
        "groups": ["developers", "system:authenticated"],
        "extra": {"scopes": ["dumps"]},
    }
    status, body = https_request(f"{apiserver.url}/api/v1/namespaces", apiserver.ca_file, proxy, headers)
    assert status == 403
    assert json.loads(body)["message"].startswith('namespaces is forbidden: User "alice" cannot list resource')

    impostor = issue(api_pki.request_header_ca, "someone-else").write(tmp_path, "impostor")
    status, _ = https_request(url, apiserver.ca_file, impostor, headers, "POST", review)
    assert status == 401  # a name outside --requestheader-allowed-names, and not signed by the client CA


def test_kube_apiserver_issues_and_accepts_service_account_tokens(
    apiserver: KubeApiServer, api_pki: ApiPki, tmp_path: Path
) -> None:
    admin = kubeconfig_for(apiserver, api_pki, tmp_path / "admin", "admin", "system:masters")
    assert kubectl(admin, "create", "serviceaccount", "robot", "--namespace=default").returncode == 0
    created = kubectl(admin, "create", "token", "robot", "--namespace=default")  # no controller made "default"
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["iss"] == SERVICE_ACCOUNT_ISSUER
    bearer = {"Authorization": f"Bearer {token}"}
    status, body = https_request(f"{apiserver.url}/api/v1/namespaces/default/secrets", apiserver.ca_file, None, bearer)
    assert status == 403
    assert 'User "system:serviceaccount:default:robot" cannot list resource "secrets"' in json.loads(body)["message"]


def test_s3_server_serves_rclone(tmp_path: Path) -> None:
    with s3_server() as s3:
        s3.create_bucket("k3s-dumps")
        assert s3.list_buckets() == ["k3s-dumps"]
        with pytest.raises(S3Error) as refused:
            dataclasses.replace(s3, secret_key="wrong").list_buckets()
        assert refused.value.status == 403

        dump = tmp_path / "snapshot.db"
        dump.write_bytes(os.urandom(12 * 1024 * 1024))  # over the 5 MiB cutoff below: a multipart upload
        remote = "S3:k3s-dumps/lab/snapshot.db"
        upload = ["--s3-no-check-bucket", "--s3-upload-cutoff=5M", "--s3-chunk-size=5M"]
        copied = s3.rclone("copyto", str(dump), remote, *upload)
        assert copied.returncode == 0, copied.stderr
        assert s3.list_objects("k3s-dumps") == {"lab/snapshot.db": dump.stat().st_size}
        listed = json.loads(s3.rclone("lsjson", "--recursive", "--files-only", "S3:k3s-dumps").stdout)
        assert [(f["Path"], f["Size"]) for f in listed] == [("lab/snapshot.db", dump.stat().st_size)]

        back = tmp_path / "back.db"
        assert s3.rclone("copyto", remote, str(back)).returncode == 0
        assert back.read_bytes() == dump.read_bytes() == s3.get_object("k3s-dumps", "lab/snapshot.db")

        assert s3.rclone("deletefile", remote).returncode == 0
        assert s3.list_objects("k3s-dumps") == {}

        # Debian's rclone 1.60 fails every S3 call when AWS_CA_BUNDLE is set, which is why rclone_env drops it.
        env = s3.rclone_env() | {"AWS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"}
        broken = subprocess.run(["rclone", "lsf", "S3:k3s-dumps"], env=env, capture_output=True, text=True)
        assert broken.returncode != 0
        assert "LoadCustomCABundleError" in broken.stderr
