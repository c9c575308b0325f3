"""Where things are on a node: one place for each path, unit name and label that several parts rely on.

The stick builder writes the secrets partition with these names, and the Ignition units and scripts read them.
"""

from __future__ import annotations

from typing import Final

IGNITION_SPEC_VERSION: Final = "3.3.0"

# The stick's read-only partition with this node's secrets, and where it is mounted.
SECRETS_LABEL: Final = "secrets"
SECRETS_DIR: Final = "/secrets"
SECRETS_MOUNT_UNIT: Final = "secrets.mount"

# Files on the secrets partition (relative to SECRETS_DIR); each exists only when the node needs it.
K3S_ENV: Final = "k3s.env"  # K3S_TOKEN (and K3S_AGENT_TOKEN on servers)
DATASTORE_ENV: Final = "datastore.env"  # K3S_DATASTORE_ENDPOINT (and _CAFILE), servers with an external datastore
DATASTORE_CA: Final = "datastore-ca.crt"  # the Vultr datastore's CA certificate, for verify-full
NODE_PASSWORD: Final = "node-password"  # noqa: S105 -- a file name: the k3s node password, kept across reboots
NODE_IDENTITY: Final = "node.env"  # NODE_NAME, CLUSTER_NAME: which node this stick belongs to
HEARTBEAT_ENV: Final = "heartbeat.env"  # HEARTBEAT_URL
LOG_EXPORT_ENV: Final = "log-export.env"  # LOGEXPORT_HOST, LOGEXPORT_PORT
DDNS_ENV: Final = "ddns.env"  # NAMECHEAP_DDNS_PASSWORD, DNS_TSIG_SECRET

# Paths on the node.
OPT_BIN: Final = "/opt/bin"
K3S_BINARY: Final = f"{OPT_BIN}/k3s"
K3S_LINKS: Final = ("kubectl", "crictl", "ctr")
K3S_CONFIG: Final = "/etc/rancher/k3s/config.yaml"
K3S_KUBECONFIG: Final = "/etc/rancher/k3s/k3s.yaml"
K3S_NODE_PASSWORD: Final = "/etc/rancher/node/password"  # noqa: S105 -- a path
HEARTBEAT_SCRIPT: Final = f"{OPT_BIN}/ephemeros-heartbeat"
DDNS_SCRIPT: Final = f"{OPT_BIN}/ephemeros-ddns"
DNS_UPDATER: Final = f"{OPT_BIN}/ephemeros-dnsupdate"  # RFC 2136 client, from nodetools/dnsupdate
DNS_UPDATER_URL_PATH: Final = "bin/ephemeros-dnsupdate"  # where it is served, under ignitionBaseUrl
NETWORK_DIR: Final = "/etc/systemd/network"

# Units.
K3S_UNIT: Final = "k3s.service"
LOG_EXPORT_UNIT: Final = "log-export.service"
HEARTBEAT_UNIT: Final = "heartbeat.service"
HEARTBEAT_TIMER: Final = "heartbeat.timer"
DDNS_UNIT: Final = "ddns.service"
DDNS_TIMER: Final = "ddns.timer"

K3S_API_PORT: Final = 6443


def config_name(hostname: str) -> str:
    """The file name of a node's public Ignition config, as served under ignitionBaseUrl."""
    return f"{hostname}.ign"
