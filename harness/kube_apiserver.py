"""A real kube-apiserver on loopback, storing in its own one-member etcd, with the certificates the caller gives.

It is configured as k3s configures its own (Node,RBAC authorization, NodeRestriction, the front-proxy request
headers, service account tokens, 10.43.0.0/16 for services), less what a lone API server on loopback has no use for.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization

from harness.certificates import CertKey, https_request
from harness.processes import built_tool, free_ports, log_tail, stop, write_private

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CIDR = "10.43.0.0/16"
REQUEST_HEADER_ALLOWED_NAMES = ("system:auth-proxy",)

Pem = bytes | Path


@dataclass(frozen=True)
class KubeApiServer:
    url: str
    port: int
    data_dir: Path  # the server's directory: its etcd's data, the certificate files, the logs
    log_path: Path
    ca_file: Path  # the serving certificate's CA as given, to trust `url`


def _pem(value: Pem) -> bytes:
    return value.read_bytes() if isinstance(value, Path) else value


def kubectl(
    kubeconfig: Path, *args: str, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the built kubectl with `kubeconfig`; the caller checks the return code."""
    command = [str(built_tool("kubectl")), f"--kubeconfig={kubeconfig}", *args]
    return subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout, check=False)


def write_kubeconfig(
    path: Path, server: str, ca: bytes, client_cert: bytes, client_key: bytes, user: str = "user"
) -> Path:
    """Write a kubeconfig (mode 0600) that reaches `server`, trusting `ca`, as the client certificate's subject."""
    encoded = {"ca": ca, "cert": client_cert, "key": client_key}
    data = {name: base64.b64encode(pem).decode() for name, pem in encoded.items()}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority-data": data["ca"]}}],
        "users": [{"name": user, "user": {"client-certificate-data": data["cert"], "client-key-data": data["key"]}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
        "current-context": "test",
    }
    write_private(path, yaml.safe_dump(config).encode())
    return path


def _wait(what: str, process: subprocess.Popen[bytes], log: Path, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            problem = (
                f"exited with {process.returncode}" if process.poll() is not None else f"not ready in {timeout:.0f}s"
            )
            raise RuntimeError(f"{what} {problem}:\n{log_tail(log.read_text(errors='replace'))}")
        time.sleep(0.25)


def _etcd_healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/health")
        return bool(json.load(connection.getresponse()).get("health") == "true")
    except OSError:
        return False
    finally:
        connection.close()


def _public_key(private_key: bytes) -> bytes:
    """The public half of a PEM private key, which --service-account-key-file reads whatever the key's format."""
    key = serialization.load_pem_private_key(private_key, password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _readyz(url: str, ca_file: Path, probe: tuple[Path, Path]) -> bool:
    try:
        status, _ = https_request(f"{url}/readyz", ca_file, probe)
    except OSError:
        return False
    return status == 200


@contextmanager
def kube_apiserver(
    *,
    client_ca: Pem,
    request_header_ca: Pem,
    service_account_key: Pem,
    serving_cert: Pem,
    serving_key: Pem,
    serving_ca: Pem,
    probe_client: CertKey,
    request_header_allowed_names: Sequence[str] = REQUEST_HEADER_ALLOWED_NAMES,
    extra_args: Sequence[str] = (),
    timeout: float = 120,
) -> Iterator[KubeApiServer]:
    """Start etcd and kube-apiserver, and wait until /readyz answers 200 to `probe_client`.

    `serving_cert` is the leaf followed by its chain and `serving_ca` the CA that roots it (trusted for the probe);
    `probe_client` is any client certificate `client_ca` signed (system:public-info-viewer lets it read /readyz).
    """
    apiserver, etcd = built_tool("kube-apiserver"), built_tool("etcd")
    directory = Path(tempfile.mkdtemp(prefix="ephemeros-kube-apiserver-"))
    files = directory / "pki"
    files.mkdir()
    for name, value in {"client-ca.crt": client_ca, "request-header-ca.crt": request_header_ca,
                        "serving.crt": serving_cert, "serving-ca.crt": serving_ca}.items():  # fmt: skip
        (files / name).write_bytes(_pem(value))
    write_private(files / "serving.key", _pem(serving_key))
    write_private(files / "service-account.key", _pem(service_account_key))
    (files / "service-account.pub").write_bytes(_public_key(_pem(service_account_key)))
    probe = probe_client.write(files, "probe")
    etcd_port, etcd_peer_port, port = free_ports(3)
    etcd_url, etcd_peer = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{etcd_peer_port}"
    etcd_log, log_path = directory / "etcd.log", directory / "kube-apiserver.log"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with etcd_log.open("wb") as log:
            processes.append(subprocess.Popen([
                str(etcd), "--name=default", f"--data-dir={directory / 'etcd'}",
                f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={etcd_peer}", f"--initial-advertise-peer-urls={etcd_peer}",
                f"--initial-cluster=default={etcd_peer}", "--quota-backend-bytes=134217728", "--unsafe-no-fsync",
            ], stdout=log, stderr=log))  # fmt: skip
        _wait("etcd", processes[0], etcd_log, lambda: _etcd_healthy(etcd_port), 30)
        command = [
            str(apiserver),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--tls-cert-file={files / 'serving.crt'}",
            f"--tls-private-key-file={files / 'serving.key'}",
            f"--client-ca-file={files / 'client-ca.crt'}",
            "--anonymous-auth=false",
            f"--requestheader-client-ca-file={files / 'request-header-ca.crt'}",
            f"--requestheader-allowed-names={','.join(request_header_allowed_names)}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-uid-headers=X-Remote-Uid",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={files / 'service-account.pub'}",
            f"--service-account-signing-key-file={files / 'service-account.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            "--profiling=false",
            *extra_args,
        ]
        with log_path.open("wb") as log:
            processes.append(subprocess.Popen(command, stdout=log, stderr=log))
        url = f"https://127.0.0.1:{port}"
        ca_file = files / "serving-ca.crt"
        _wait("kube-apiserver", processes[1], log_path, lambda: _readyz(url, ca_file, probe), timeout)
        yield KubeApiServer(url, port, directory, log_path, ca_file)
    finally:
        for process in reversed(processes):
            stop(process, grace=20)
        shutil.rmtree(directory, ignore_errors=True)
