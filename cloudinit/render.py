"""Render the datastore VM's cloud-init user data: a #cloud-config document for Debian's cloud-init (22.4 on
Debian 12) that installs PostgreSQL from Debian, configures TLS and the k3s role, and sets up dumps.

cloud-init runs it once, when the VM is made: packages are installed first, then the files marked `defer` are
written (PostgreSQL's files belong to its user, which the package makes), then runcmd runs the setup script.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from base import datastore_layout as D
from base.envfile import env_file
from base.templating import Templates
from cloudinit.scram import verifier
from settings.datastore import Dumps
from settings.model import Settings

TEMPLATES = Templates(Path(__file__).parent / "templates", D=D)
PASSWORD_STAND_IN: Final = "<the k3s password>"  # noqa: S105 -- a placeholder, no password


@dataclass(frozen=True)
class Schedule:
    name: str
    keep: int

    @property
    def calendar(self) -> str:
        """systemd's OnCalendar= knows the schedules' names (hourly, daily, weekly) as they are."""
        return self.name

    @property
    def unit(self) -> str:
        return D.dump_unit(self.name)

    @property
    def timer(self) -> str:
        return D.dump_timer(self.name)


@dataclass(frozen=True)
class DatastoreSecrets:
    """What the user data carries that is secret (so the whole document is)."""

    password: str = field(repr=False)
    server_certificate: str = field(repr=False)  # PEM, signed by the datastore CA that servers trust
    server_key: str = field(repr=False)
    dumps_access_key_id: str | None = field(default=None, repr=False)
    dumps_secret_access_key: str | None = field(default=None, repr=False)
    dumps_heartbeat_url: str | None = field(default=None, repr=False)


def schedules(dumps: Dumps | None) -> list[Schedule]:
    """The dump schedules that keep at least one dump."""
    return [Schedule(name, keep) for name, keep in dumps.keep.schedules().items()] if dumps is not None else []


def password_verifier(password: str) -> str:
    """The password's SCRAM verifier, with a salt derived from the password itself, so that the same password
    always renders the same user data (the salt need not be secret, only unique, and each password is random)."""
    salt = hmac.new(password.encode(), b"ephemeros datastore scram salt", "sha256").digest()[:16]
    return verifier(password, salt=salt)


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks, so the files in the user data read as they will be written."""


def _block(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _block)


def _file(path: str, content: str, permissions: str, owner: str = "root:root", defer: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "content": content, "owner": owner, "permissions": permissions}
    if defer:  # written after the packages: PostgreSQL's user exists only then
        entry["defer"] = True
    return entry


def _dumps_env(settings: Settings, secrets: DatastoreSecrets) -> str:
    dumps = settings.datastore.dumps
    if dumps is None:
        return ""
    remote = f"RCLONE_CONFIG_{D.RCLONE_REMOTE.upper()}"
    values = {
        f"{remote}_TYPE": "s3",
        f"{remote}_PROVIDER": "Other",
        f"{remote}_ENDPOINT": dumps.endpoint,
        f"{remote}_REGION": dumps.region,
        f"{remote}_ACCESS_KEY_ID": secrets.dumps_access_key_id or "",
        f"{remote}_SECRET_ACCESS_KEY": secrets.dumps_secret_access_key or "",
        f"{remote}_FORCE_PATH_STYLE": "true",
        f"{remote}_NO_CHECK_BUCKET": "true",
        "HEARTBEAT_URL": secrets.dumps_heartbeat_url or "",
    }
    return env_file(values)


def user_data(settings: Settings, secrets: DatastoreSecrets) -> str:
    """The #cloud-config document for the datastore VM."""
    vultr = settings.datastore.vultr
    if vultr is None:
        raise ValueError("the datastore's user data needs datastore.vultr")
    dumps = settings.datastore.dumps
    runs = schedules(dumps)
    files = [
        _file(
            D.CONFIG,
            TEMPLATES.render("postgresql.conf", cluster=settings.cluster_name, max_connections=vultr.max_connections),
            "0644",
        ),
        _file(D.HBA, TEMPLATES.render("pg_hba.conf"), "0640", "postgres:postgres", defer=True),
        _file(D.CERTIFICATE, secrets.server_certificate, "0644", "postgres:postgres", defer=True),
        _file(D.KEY, secrets.server_key, "0600", "postgres:postgres", defer=True),
        _file(D.SETUP_SQL, TEMPLATES.render("setup.sql", verifier=password_verifier(secrets.password)), "0600"),
        _file(D.SETUP_SCRIPT, TEMPLATES.render("setup.sh", schedules=runs), "0755"),
    ]
    if dumps is not None:
        files += [
            _file(D.DUMPS_ENV, _dumps_env(settings, secrets), "0600"),
            _file(D.DUMP_SCRIPT, TEMPLATES.render("dump.sh", bucket=dumps.bucket, prefix=dumps.prefix), "0755"),
        ]
        for run in runs:
            files.append(_file(f"{D.SYSTEMD}/{run.unit}", TEMPLATES.render("dump.service", schedule=run), "0644"))
            files.append(_file(f"{D.SYSTEMD}/{run.timer}", TEMPLATES.render("dump.timer", schedule=run), "0644"))
    document: dict[str, Any] = {
        "package_update": True,
        "packages": ["postgresql", "ca-certificates", "curl", *(["rclone"] if dumps is not None else [])],
        "write_files": files,
        "ssh_authorized_keys": list(settings.ssh_keys),
        "runcmd": [[D.SETUP_SCRIPT]],
    }
    if vultr.apt_mirror is not None:
        document["apt"] = {"primary": [{"arches": ["default"], "uri": vultr.apt_mirror}]}
    heading = f"#cloud-config\n# ephemeros: the k3s datastore of cluster {settings.cluster_name}, made by pulumi up.\n"
    return heading + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=1000)


def user_data_digest(settings: Settings, secrets: DatastoreSecrets) -> str:
    """What the user data is made of, without the password (which changes in place): when this changes, the change
    applies to a new VM only, as cloud-init reads user data once."""
    document = user_data(settings, secrets).replace(password_verifier(secrets.password), PASSWORD_STAND_IN)
    return hashlib.sha256(document.encode()).hexdigest()


def user_data_base64(document: str) -> str:
    """The form the Vultr API takes user data in."""
    return base64.b64encode(document.encode()).decode()
