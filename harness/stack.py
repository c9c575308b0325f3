"""Stack configurations for tests, in the form the Pulumi engine hands a program: full keys, JSON for objects."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from settings import NAMESPACE, Node, Settings

REPO = Path(__file__).resolve().parents[1]

# A real ed25519 public key whose private half was thrown away.
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILY9Yw23VJ4gHbd+RofU9iScY1bdpnqijBk+ZP8EsMOA test@ephemeros"
K3S_SHA256 = "835873f37245fc615f547a2fe2af9402a347875f13fa64a1f136de644955ea3f"

# Credential values used across the tests: they must never appear in a public artifact, a log or plain state.
SECRET_VALUES = {
    "datastoreEndpoint": "postgres://k3s:Pg-S3cret-9f8e7d@db.lab.test:5432/k3s",
    "logExportTarget": "logs-secret-7c6b.example.net:39213",
    "healthchecksApiKey": "hc-api-key-1a2b3c4d5e6f",
    "dnsTsigSecret": "c2VjcmV0LXRzaWcta2V5LWJ5dGVzLTAxMjM0NTY3",
    "namecheapDdnsPassword": "ncpw0a1b2c3d4e5f6789",
    "vultrApiKey": "VULTRAPIKEY0SECRET1234567890ABCDEFGH",
    "dumpsAccessKeyId": "0035dumps0keyid0secret",
    "dumpsSecretAccessKey": "K003dumps+secret/access0key0value",
}
HEARTBEAT_URLS = {
    "node0": "https://hc.example.net/ping/11111111-aaaa-secret",
    "node1": "https://hc.example.net/ping/22222222-bbbb-secret",
    "node2": "https://hc.example.net/ping/33333333-cccc-secret",
}


def base_settings() -> dict[str, Any]:
    """A valid three-node stack (one server, two agents), as a plain document keyed without namespace."""
    return {
        "clusterName": "lab",
        "domain": "lab.ephemeros.test",
        "ignitionBaseUrl": "https://ignition.ephemeros.test/lab",
        "k3s": {"version": "v1.36.4+k3s1", "sha256": K3S_SHA256},
        "nodes": [
            {"hostname": "node0", "role": "server", "mac": "52:54:00:aa:00:00"},
            {"hostname": "node1", "role": "agent", "mac": "52:54:00:aa:00:01"},
            {"hostname": "node2", "role": "agent"},
        ],
        "sshKeys": [SSH_KEY],
    }


def full_settings() -> tuple[dict[str, Any], set[str]]:
    """Every feature on: postgres, log export, heartbeat URLs, Namecheap DDNS, a bonded static server."""
    doc = base_settings()
    doc["nodes"][0].update(
        {
            "address": "192.168.50.10/24",
            "gateway": "192.168.50.1",
            "nameservers": ["192.168.50.1"],
            "bond": {"interfaces": ["eno1", "eno2"]},
            "labels": {"ephemeros.io/zone": "a"},
        }
    )
    doc["nodes"].insert(1, {"hostname": "node3", "role": "server", "taints": ["dedicated=db:NoSchedule"]})
    doc["datastore"] = {"type": "postgres"}
    doc["heartbeat"] = {"provider": "urls", "period": 300}
    doc["dns"] = {"namecheap": {"domain": "ephemeros.test"}}
    doc["datastoreEndpoint"] = SECRET_VALUES["datastoreEndpoint"]
    doc["logExportTarget"] = SECRET_VALUES["logExportTarget"]
    doc["namecheapDdnsPassword"] = SECRET_VALUES["namecheapDdnsPassword"]
    doc["heartbeatUrls"] = {**HEARTBEAT_URLS, "node3": "https://hc.example.net/ping/44444444-dddd-secret"}
    secret = {"datastoreEndpoint", "logExportTarget", "namecheapDdnsPassword", "heartbeatUrls"}
    return doc, secret


def to_raw(doc: dict[str, Any]) -> dict[str, str]:
    """The document as Pulumi passes config to a program."""
    return {f"{NAMESPACE}:{key}": value if isinstance(value, str) else json.dumps(value) for key, value in doc.items()}


def secret_keys(keys: set[str]) -> set[str]:
    return {f"{NAMESPACE}:{key}" for key in keys}


def edited(doc: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(doc)


def project_defaults() -> dict[str, Any]:
    """The defaults Pulumi.yaml declares, which the engine fills in for keys a stack does not set."""
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    return {key: spec["default"] for key, spec in project["config"].items() if "default" in spec}


def stack_settings(stack: str) -> dict[str, Any]:
    """The settings of a stack the project ships (stacks/<stack>.yaml) as a document (keys without namespace),
    with Pulumi.yaml's defaults applied."""
    config = yaml.safe_load((REPO / "stacks" / f"{stack}.yaml").read_text())["config"]
    prefix = f"{NAMESPACE}:"
    return {**project_defaults(), **{k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}}


def node_named(settings: Settings, hostname: str) -> Node:
    return next(n for n in settings.nodes if n.hostname == hostname)
