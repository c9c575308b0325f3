"""Render the datastore VM's cloud-init user data: a #cloud-config document for Debian's cloud-init (22.4 on
Debian 12) that installs PostgreSQL from Debian, configures TLS and the k3s role, sets up dumps and their weekly
restore check, and lets only root ask the metadata service (which serves the user data).

cloud-init runs it once, when the VM is made: packages are installed first, then the files marked `defer` are
written (PostgreSQL's files belong to its user, which the package makes), then runcmd runs the setup script.

`user_data(settings)` renders everything once, with a stand-in for each secret; `UserData.document` puts the
secrets in, and `UserData.digest` says what the VM is made of without holding any of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from base import datastore_layout as D
from base.envfile import env_file, env_value
from base.templating import Templates
from cloudinit.scram import verifier
from settings.datastore import Dumps
from settings.model import Settings

TEMPLATES = Templates(Path(__file__).parent / "templates", D=D)
VERIFIER = "password_verifier"  # the one secret that changes in place (ALTER ROLE), so no digest covers it


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
class KeptSecrets:
    """The secrets the VM keeps as cloud-init wrote them: a change to any applies to a new VM only."""

    server_certificate: str = field(repr=False)  # PEM, signed by the datastore CA that servers trust
    server_key: str = field(repr=False)
    dumps_access_key_id: str | None = field(default=None, repr=False)
    dumps_secret_access_key: str | None = field(default=None, repr=False)
    dumps_heartbeat_url: str | None = field(default=None, repr=False)
    restore_heartbeat_url: str | None = field(default=None, repr=False)

    def by_name(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) or "" for f in fields(self)}


def stand_in(name: str) -> str:
    """What the user data holds in place of secret `name` until `UserData.document` puts it in."""
    return f"<ephemeros secret {name}>"


def schedules(dumps: Dumps | None) -> list[Schedule]:
    """The dump schedules that keep at least one dump."""
    return [Schedule(name, keep) for name, keep in dumps.keep.schedules().items()] if dumps is not None else []


def password_verifier(password: str) -> str:
    """The password's SCRAM verifier, with a salt derived from the password itself, so that the same password
    always renders the same user data (the salt need not be secret, only unique, and each password is random)."""
    salt = hmac.new(password.encode(), b"ephemeros datastore scram salt", "sha256").digest()[:16]
    return verifier(password, salt=salt)


def _as_is(_name: str, value: str) -> str:
    return value


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks, so the files in the user data read as they will be written."""


def _block(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _block)


@dataclass(frozen=True)
class _File:
    path: str
    content: str  # with stand-ins for the secrets it holds
    permissions: str
    owner: str = "root:root"
    defer: bool = False  # written after the packages: PostgreSQL's user exists only then
    quote: Callable[[str, str], str] = _as_is  # a secret's value as the file holds it

    def entry(self, secrets: Mapping[str, str]) -> dict[str, Any]:
        content = self.content
        for name, value in secrets.items():
            if stand_in(name) in content:
                content = content.replace(stand_in(name), self.quote(name, value))
        entry: dict[str, Any] = {"path": self.path, "content": content, "owner": self.owner}
        entry["permissions"] = self.permissions
        if self.defer:
            entry["defer"] = True
        return entry


def _dumps_env(settings: Settings) -> str:
    dumps = settings.datastore.dumps
    if dumps is None:
        return ""
    remote = f"RCLONE_CONFIG_{D.RCLONE_REMOTE.upper()}"
    return env_file(
        {
            f"{remote}_TYPE": "s3",
            f"{remote}_PROVIDER": "Other",
            f"{remote}_ENDPOINT": dumps.endpoint,
            f"{remote}_REGION": dumps.region,
            f"{remote}_ACCESS_KEY_ID": stand_in("dumps_access_key_id"),
            f"{remote}_SECRET_ACCESS_KEY": stand_in("dumps_secret_access_key"),
            f"{remote}_FORCE_PATH_STYLE": "true",
            f"{remote}_NO_CHECK_BUCKET": "true",
            "HEARTBEAT_URL": stand_in("dumps_heartbeat_url"),
            "RESTORE_CHECK_URL": stand_in("restore_heartbeat_url"),
        }
    )


def _files(settings: Settings) -> list[_File]:
    vultr = settings.datastore.vultr
    if vultr is None:
        raise ValueError("the datastore's user data needs datastore.vultr")
    dumps = settings.datastore.dumps
    runs = schedules(dumps)
    files = [
        _File(
            D.CONFIG,
            TEMPLATES.render("postgresql.conf", cluster=settings.cluster_name, max_connections=vultr.max_connections),
            "0644",
        ),
        _File(D.HBA, TEMPLATES.render("pg_hba.conf"), "0640", "postgres:postgres", defer=True),
        _File(D.CERTIFICATE, stand_in("server_certificate"), "0644", "postgres:postgres", defer=True),
        _File(D.KEY, stand_in("server_key"), "0600", "postgres:postgres", defer=True),
        _File(D.SETUP_SQL, TEMPLATES.render("setup.sql", verifier=stand_in(VERIFIER)), "0600"),
        _File(D.SETUP_SCRIPT, TEMPLATES.render("setup.sh", schedules=runs), "0755"),
        _File(D.METADATA_RULES, TEMPLATES.render("metadata.nft"), "0644"),
        _File(f"{D.SYSTEMD}/{D.METADATA_UNIT}", TEMPLATES.render("metadata-root-only.service"), "0644"),
    ]
    if dumps is None:
        return files
    files += [
        _File(D.DUMPS_ENV, _dumps_env(settings), "0600", quote=env_value),
        _File(D.DUMP_SCRIPT, TEMPLATES.render("dump.sh", bucket=dumps.bucket, prefix=dumps.prefix), "0755"),
        _File(
            D.RESTORE_CHECK_SCRIPT,
            TEMPLATES.render("restore-check.sh", bucket=dumps.bucket, prefix=dumps.prefix, schedules=runs),
            "0755",
        ),
        _File(f"{D.SYSTEMD}/{D.RESTORE_CHECK}.service", TEMPLATES.render("restore-check.service"), "0644"),
        _File(f"{D.SYSTEMD}/{D.RESTORE_CHECK}.timer", TEMPLATES.render("restore-check.timer"), "0644"),
    ]
    for run in runs:
        files.append(_File(f"{D.SYSTEMD}/{run.unit}", TEMPLATES.render("dump.service", schedule=run), "0644"))
        files.append(_File(f"{D.SYSTEMD}/{run.timer}", TEMPLATES.render("dump.timer", schedule=run), "0644"))
    return files


@dataclass(frozen=True)
class UserData:
    """The datastore VM's user data, rendered once with a stand-in for each secret."""

    heading: str
    files: tuple[_File, ...]
    rest: dict[str, Any]  # the document's other keys

    def _render(self, secrets: Mapping[str, str]) -> str:
        document = {**self.rest, "write_files": [f.entry(secrets) for f in self.files]}
        return self.heading + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=1000)

    def document(self, password: str, kept: KeptSecrets) -> str:
        """The #cloud-config document for the VM, every secret in."""
        return self._render({**kept.by_name(), VERIFIER: password_verifier(password)})

    def digest(self, kept: KeptSecrets, key: str) -> str:
        """What the VM is made of, for plain state: the document with its stand-ins, and a fingerprint of each kept
        secret keyed with `key` (a secret the state keeps encrypted), so that it tells a changed secret and
        nothing else. The password is left out: it changes in place."""
        text = self._render({})
        for name, value in sorted(kept.by_name().items()):
            text += f"\n{name} {hmac.new(key.encode(), value.encode(), 'sha256').hexdigest()}"
        return hashlib.sha256(text.encode()).hexdigest()


def user_data(settings: Settings) -> UserData:
    """The user data for the datastore VM of `settings`, with stand-ins for its secrets."""
    vultr = settings.datastore.vultr
    if vultr is None:
        raise ValueError("the datastore's user data needs datastore.vultr")
    dumps = settings.datastore.dumps
    rest: dict[str, Any] = {
        "package_update": True,
        "packages": ["postgresql", "ca-certificates", "curl", "nftables", *(["rclone"] if dumps is not None else [])],
        "write_files": [],  # in this place of the document, filled by UserData
        "ssh_authorized_keys": list(settings.ssh_keys),
        "runcmd": [[D.SETUP_SCRIPT]],
    }
    if vultr.apt_mirror is not None:
        rest["apt"] = {"primary": [{"arches": ["default"], "uri": vultr.apt_mirror}]}
    heading = f"#cloud-config\n# ephemeros: the k3s datastore of cluster {settings.cluster_name}, made by pulumi up.\n"
    return UserData(heading, tuple(_files(settings)), rest)


def user_data_base64(document: str) -> str:
    """The form the Vultr API takes user data in."""
    return base64.b64encode(document.encode()).decode()
