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
ETCD_CLIENT_CERT: Final = "etcd-client.crt"  # servers with embedded etcd: a client of the other servers' etcd
ETCD_CLIENT_KEY: Final = "etcd-client.key"

# The cluster's PKI on a server (made by the program, see pki/k3s.py): the CAs k3s reads from K3S_TLS_DIR before
# its first start, each a chain (.crt) and a key, and the service-account key. On the stick each is a flat file,
# pki-<name with / as ->; a unit puts them in place before k3s starts, at every boot.
K3S_TLS_DIR: Final = "/var/lib/rancher/k3s/server/tls"
K3S_LEAF_CAS: Final = ("server", "client", "request-header", "etcd/peer", "etcd/server")
K3S_SERVICE_KEY: Final = "service.key"
SERVICE_KEY_FILE: Final = f"pki-{K3S_SERVICE_KEY}"  # its name on the stick


def ca_stem(ca: str) -> str:
    """A CA's name as one word: "etcd/server" -> "etcd-server-ca"."""
    return f"{ca.replace('/', '-')}-ca"


def pki_file(ca: str, part: str) -> str:
    """The stick file of one of the CAs (e.g. "etcd/server"), its chain ("crt") or its key ("key")."""
    return f"pki-{ca_stem(ca)}.{part}"


def pki_files() -> dict[str, str]:
    """Stick file name -> path under K3S_TLS_DIR, for every file of the cluster's PKI a server carries."""
    files = {pki_file(ca, part): f"{ca}-ca.{part}" for ca in K3S_LEAF_CAS for part in ("crt", "key")}
    return files | {SERVICE_KEY_FILE: K3S_SERVICE_KEY}


def addon_values_file(chart: str) -> str:
    """The stick file holding a chart's secret values, as a Secret manifest."""
    return f"addon-{chart}-values.yaml"


def addon_values_secret(chart: str) -> str:
    """The Secret (in kube-system) that a chart's HelmChart reads its secret values from."""
    return f"ephemeros-addon-{chart}-values"


# Paths on the node.
OPT_BIN: Final = "/opt/bin"
K3S_BINARY: Final = f"{OPT_BIN}/k3s"
K3S_LINKS: Final = ("kubectl", "crictl", "ctr")
K3S_CONFIG: Final = "/etc/rancher/k3s/config.yaml"
K3S_KUBECONFIG: Final = "/etc/rancher/k3s/k3s.yaml"
K3S_NODE_PASSWORD: Final = "/etc/rancher/node/password"  # noqa: S105 -- a path
K3S_MANIFESTS_DIR: Final = "/var/lib/rancher/k3s/server/manifests"  # applied by k3s at every server start
KUBE_VIP_MANIFEST: Final = f"{K3S_MANIFESTS_DIR}/ephemeros-kube-vip.yaml"


def addon_manifest(name: str) -> str:
    """Where a server keeps an add-on's manifest (a chart's HelmChart, or a plain manifest), by the add-on's name."""
    return f"{K3S_MANIFESTS_DIR}/ephemeros-addon-{name}.yaml"


def addon_values_manifest(chart: str) -> str:
    """Where a server keeps a chart's secret values (the Secret from the stick): a prefix no add-on's has."""
    return f"{K3S_MANIFESTS_DIR}/ephemeros-values-{chart}.yaml"


HEARTBEAT_SCRIPT: Final = f"{OPT_BIN}/ephemeros-heartbeat"
DDNS_SCRIPT: Final = f"{OPT_BIN}/ephemeros-ddns"
DNS_UPDATER: Final = f"{OPT_BIN}/ephemeros-dnsupdate"  # RFC 2136 client, from nodetools/dnsupdate
DNS_UPDATER_URL_PATH: Final = "bin/ephemeros-dnsupdate"  # where it is served, under ignitionBaseUrl
ETCD_REJOIN: Final = f"{OPT_BIN}/ephemeros-etcd-rejoin"  # a wiped server's stale etcd member removed, from nodetools
ETCD_REJOIN_URL_PATH: Final = "bin/ephemeros-etcd-rejoin"
K3S_CONFIG_DROPINS: Final = f"{K3S_CONFIG}.d"  # k3s reads <config>.d/*.yaml after its config, in name order
ETCD_DROPIN: Final = f"{K3S_CONFIG_DROPINS}/50-ephemeros-etcd.yaml"  # server: or cluster-init:, made at each boot
NETWORK_DIR: Final = "/etc/systemd/network"
CONFIG_DIGEST: Final = "/etc/ephemeros/config-digest"  # sha256 of the rest of the node's Ignition config
STICK_FILES: Final = "/etc/ephemeros/stick-files"  # with updates: the names of the files the config needs on the stick

# Units.
K3S_UNIT: Final = "k3s.service"
# The server's files from the stick where k3s reads them, before k3s: its PKI, add-ons' secret values.
SERVER_FILES_UNIT: Final = "ephemeros-server-files.service"
SERVER_FILES_SCRIPT: Final = f"{OPT_BIN}/ephemeros-server-files"
LOG_EXPORT_UNIT: Final = "log-export.service"
HEARTBEAT_UNIT: Final = "heartbeat.service"
HEARTBEAT_TIMER: Final = "heartbeat.timer"
DDNS_UNIT: Final = "ddns.service"
DDNS_TIMER: Final = "ddns.timer"
ETCD_REJOIN_UNIT: Final = "ephemeros-etcd-rejoin.service"

K3S_API_PORT: Final = 6443
CONTROL_PLANE_LABEL: Final = "node-role.kubernetes.io/control-plane"  # k3s sets it to "true" on every server

# Coordinated reboots (settings.updates): a timer compares what the node booted with what is served for it now and
# asks kured for a reboot through kured's sentinel file; kured asks the node, through a command, whether it may.
REBOOT_SENTINEL: Final = "/var/run/reboot-required"  # kured's default; tmpfs on a diskless node: gone after the reboot
UPDATE_CHECK_SCRIPT: Final = f"{OPT_BIN}/ephemeros-update-check"
UPDATE_CHECK_UNIT: Final = "ephemeros-update-check.service"
UPDATE_CHECK_TIMER: Final = "ephemeros-update-check.timer"
REBOOT_REQUIRED_SCRIPT: Final = f"{OPT_BIN}/ephemeros-reboot-required"  # kured's sentinel command, on the host
KURED_MANIFEST: Final = f"{K3S_MANIFESTS_DIR}/ephemeros-kured.yaml"

# Image registries (settings.registries): k3s's registries.yaml, assembled before k3s starts from its public part in
# the Ignition and the registries' credentials on the stick.
REGISTRIES_FILE: Final = "/etc/rancher/k3s/registries.yaml"
REGISTRIES_PUBLIC: Final = "/etc/ephemeros/registries.yaml"
REGISTRIES_AUTH: Final = "registries-auth.yaml"  # on the stick: the `configs` entries of registries with credentials
REGISTRIES_SCRIPT: Final = f"{OPT_BIN}/ephemeros-registries"
REGISTRIES_UNIT: Final = "ephemeros-registries.service"
REGISTRY_CA_DIR: Final = "/etc/ephemeros/registry-ca"  # registries.configs[].caCert, one file per host


def registry_ca_file(host: str) -> str:
    """Where a node keeps a registry host's CA certificate (registries.configs[].caCert)."""
    return f"{REGISTRY_CA_DIR}/{host.replace(':', '_')}.crt"


def config_name(hostname: str) -> str:
    """The file name of a node's public Ignition config, as served under ignitionBaseUrl."""
    return f"{hostname}.ign"


def boot_script_name(hostname: str) -> str:
    """The file name of a node's public boot script (Flatcar version, images, kernel arguments), served under
    ignitionBaseUrl next to its Ignition config; the node's stick chains it at every boot."""
    return f"{hostname}.ipxe"


# The kernel argument by which a node knows which boot script it booted: the sha256 of the served script's text with
# this argument's value left out (see bootmedia.boot_script.boot_digest).
BOOT_DIGEST_ARG: Final = "ephemeros.boot"
