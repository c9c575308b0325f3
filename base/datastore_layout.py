"""Where things are on the datastore VM, and what it serves: one place for each path the cloud-init user data
writes and its scripts read, and for the names the servers connect with."""

from __future__ import annotations

from typing import Final

POSTGRES_PORT: Final = 5432
SSH_PORT: Final = 22
DATABASE: Final = "k3s"
ROLE: Final = "k3s"

ETC: Final = "/etc/ephemeros"
CONFIG: Final = f"{ETC}/postgresql.conf"  # copied into each cluster's conf.d by the setup script
HBA: Final = f"{ETC}/pg_hba.conf"
CERTIFICATE: Final = f"{ETC}/server.crt"
KEY: Final = f"{ETC}/server.key"
SETUP_SQL: Final = f"{ETC}/setup.sql"  # removed once run
SETUP_SCRIPT: Final = "/usr/local/sbin/ephemeros-setup"
DUMPS_ENV: Final = f"{ETC}/dumps.env"  # rclone's remote "dumps" and the heartbeat URLs, root 0600
DUMP_SCRIPT: Final = "/usr/local/sbin/ephemeros-dump"
RCLONE_REMOTE: Final = "dumps"
SYSTEMD: Final = "/etc/systemd/system"
RESTORE_CHECK: Final = "ephemeros-restore-check"  # the weekly proof that the newest dump restores
RESTORE_CHECK_SCRIPT: Final = f"/usr/local/sbin/{RESTORE_CHECK}"
RESTORE_CHECK_DATABASE: Final = "ephemeros_restore_check"  # scratch: made, checked and dropped by each run
METADATA_ADDRESS: Final = "169.254.169.254"  # Vultr's metadata service, which serves the user data
METADATA_RULES: Final = f"{ETC}/metadata.nft"  # nftables: only root may reach it
METADATA_UNIT: Final = "ephemeros-metadata-root-only.service"
READY_MESSAGE: Final = "ephemeros: the datastore is ready"  # the setup script's last line


def dump_unit(schedule: str) -> str:
    return f"ephemeros-dump-{schedule}.service"


def dump_timer(schedule: str) -> str:
    return f"ephemeros-dump-{schedule}.timer"


def endpoint(host: str, password: str) -> str:
    """The URL k3s servers connect with (K3S_DATASTORE_ENDPOINT): TLS, the server's certificate checked against the
    datastore's CA (K3S_DATASTORE_CAFILE) and matched with `host` (verify-full). The password is alphanumeric."""
    return f"postgres://{ROLE}:{password}@{host}:{POSTGRES_PORT}/{DATABASE}?sslmode=verify-full"
