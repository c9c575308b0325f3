"""DatastoreLogin: the k3s role's login at the datastore's PostgreSQL, checked as a server will use it (TLS, the
server's certificate verified against the datastore's CA and matched with the host: verify-full), and changed in
place when the password is rotated (ALTER ROLE with a SCRAM verifier, so the server never sees the password).

Create waits until the login works, up to a deadline, and fails with the likely causes when it does not: this
machine's address missing from the firewall's allowed sources, or cloud-init still installing PostgreSQL.
Refresh tries once and records what it found; it never fails. A new VM (`instance_id` changed) is a new database,
made by cloud-init with the password of now: the login is waited for again, and nothing is altered on it.
"""

from __future__ import annotations

import dataclasses
import datetime
import tempfile
import time
from typing import Any

import psycopg
import pulumi
from psycopg import sql
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from cloudinit.scram import verifier
from providers.props import OUTPUT, SECRET, Props, ProviderError, TypedResource, diff

POLL_SECONDS = 5.0
CONNECT_TIMEOUT = 10
NOT_CHECKED = "not checked (waitForPostgres is false)"


@dataclasses.dataclass(frozen=True, kw_only=True)
class DatastoreLoginProps(Props):
    host: str
    port: int
    database: str
    role: str
    ca_pem: str
    password: str = dataclasses.field(repr=False, metadata=SECRET)
    check: bool  # wait at create, and try at refresh; false: this machine may not reach PostgreSQL
    timeout_seconds: int
    instance_id: str = ""  # the VM's; "": recorded before the login knew it
    checked: str | None = dataclasses.field(default=None, metadata=OUTPUT)  # what the last check found, and when

    def login(self, password: str | None = None) -> psycopg.Connection[Any]:
        """A connection as the role, over TLS with verify-full against the datastore's CA."""
        with tempfile.NamedTemporaryFile("w", suffix=".crt") as ca:
            ca.write(self.ca_pem)
            ca.flush()
            return psycopg.connect(
                host=self.host,
                port=self.port,
                dbname=self.database,
                user=self.role,
                password=password or self.password,
                sslmode="verify-full",
                sslrootcert=ca.name,
                connect_timeout=CONNECT_TIMEOUT,
            )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _try(login: DatastoreLoginProps, password: str | None = None) -> str | None:
    """None when the role logs in; else why not (never with the password)."""
    try:
        with login.login(password) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return str(error).replace(password or login.password, "<password>").strip()
    return None


def _wait(login: DatastoreLoginProps) -> str:
    deadline = time.monotonic() + login.timeout_seconds
    while (problem := _try(login)) is not None:
        if time.monotonic() > deadline:
            raise ProviderError(
                f"PostgreSQL at {login.host}:{login.port} did not let role {login.role} log in over TLS within "
                f"{login.timeout_seconds} s. Likely: this machine's address is not in datastore.vultr.allowedSources "
                "(the firewall drops it), or cloud-init is still installing PostgreSQL on the VM (a few minutes "
                "after it starts); `pulumi up` again waits again. Or set datastore.vultr.waitForPostgres to false "
                f"to skip this check. Last answer: {problem}"
            )
        time.sleep(POLL_SECONDS)
    return _logged_in(login)


def _logged_in(login: DatastoreLoginProps) -> str:
    return f"{_now()}: role {login.role} logged in over TLS (verify-full)"


class DatastoreLoginProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        wanted = DatastoreLoginProps.from_props(props)
        checked = _wait(wanted) if wanted.check else NOT_CHECKED
        return CreateResult(
            id_=f"{wanted.role}@{wanted.host}", outs=dataclasses.replace(wanted, checked=checked).to_props()
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, DatastoreLoginProps, ignore=("timeout_seconds",))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        old, wanted = DatastoreLoginProps.from_props(olds), DatastoreLoginProps.from_props(news)
        new_vm = bool(old.instance_id) and wanted.instance_id != old.instance_id
        if wanted.password != old.password and not new_vm:
            # A new CA or host needs a new VM (refused at preview): the old login still reaches the same server.
            try:
                with old.login() as connection:
                    statement = sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(old.role), sql.Literal(verifier(wanted.password))
                    )
                    connection.execute(statement)
                    connection.commit()
            except psycopg.Error as error:
                raise ProviderError(
                    f"changing the datastore's password in place needs this machine to log in to PostgreSQL at "
                    f"{old.host}:{old.port} over TLS, and it could not: "
                    f"{str(error).replace(old.password, '<password>')} (is this machine's address in "
                    "datastore.vultr.allowedSources?)"
                ) from None
        checked: str | None = NOT_CHECKED if new_vm else old.checked
        if wanted.check or (wanted.password != old.password and not new_vm):
            checked = _wait(wanted)
        return UpdateResult(outs=dataclasses.replace(wanted, checked=checked).to_props())

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        state = DatastoreLoginProps.from_props(props)
        if not state.check:
            return ReadResult(id_=id_, outs=props)
        problem = _try(state)
        checked = f"{_now()}: " + (
            f"role {state.role} logged in over TLS (verify-full)" if problem is None else problem
        )
        return ReadResult(id_=id_, outs=dataclasses.replace(state, checked=checked).to_props())


class DatastoreLogin(TypedResource, module="ephemeros", name="DatastoreLogin"):
    """Role `role`'s login to `database` at `host`:`port` with `password`, the server verified against `ca_pem`."""

    checked: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        host: pulumi.Input[str],
        port: int,
        database: str,
        role: str,
        ca_pem: pulumi.Input[str],
        password: pulumi.Input[str],
        check: bool,
        timeout_seconds: int,
        instance_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = DatastoreLoginProps.inputs(
            host=host,
            port=port,
            database=database,
            role=role,
            ca_pem=ca_pem,
            password=password,
            check=check,
            timeout_seconds=timeout_seconds,
            instance_id=instance_id,
        )
        super().__init__(DatastoreLoginProvider(), name, DatastoreLoginProps, inputs, opts)
