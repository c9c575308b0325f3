"""Instance: the datastore's VM at Vultr, with its reserved IPv4 as main address and its firewall group.

What the API lets change in place changes in place (PATCH: plan upgrade, label, tags, firewall group, automatic
backups; the backup schedule). What would make a new VM (region, operating system, host name, the reserved IP,
the names in its certificate) is refused at preview (`check`), naming the setting, unless replacement is allowed:
a new VM is a new, empty database. The user data is read by cloud-init once, when the VM is made: a later change
never replaces the VM; the state keeps the digest of the user data the VM was made with, so the program can say
at preview that a change applies to a new VM only.

Create waits until the VM is active, running, installed and has its address; if it is not by the deadline, the
VM is still recorded (an unrecorded VM would be billed and forgotten) with what it was waiting for in `ready`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult
from pulumi.runtime.rpc import UNKNOWN

from providers.props import OUTPUT, SECRET, TypedResource, camel, diff
from providers.vultr.account import NOT_COMPARED, VultrProps, VultrProvider
from providers.vultr.api import VultrApi, VultrError, not_ready
from settings import NAMESPACE

WAIT_SECONDS = 1200.0  # from creation until the VM is active, running and installed
POLL_SECONDS = 5.0
# The setting behind each field whose change would replace the VM, as the user knows it.
REPLACED_BY: Final = {
    "region": "datastore.vultr.region",
    "os": "datastore.vultr.os",
    "hostname": "datastore.vultr.hostname",
    "reserved_ip_id": "datastore.vultr.region (a new reserved IP)",
    "certificate_names": "datastore.vultr.dnsName (the names in the VM's certificate)",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class InstanceProps(VultrProps):
    REPLACE_ON = tuple(REPLACED_BY)

    region: str
    plan: str
    os: str  # by name; resolved to an id through GET /v2/os
    hostname: str
    label: str
    tags: tuple[str, ...]
    user_data: str = dataclasses.field(repr=False, metadata=SECRET)  # base64, as the API takes it
    user_data_digest: str
    backups: bool
    backup_type: str
    backup_hour: int
    backup_day_of_week: int
    backup_day_of_month: int
    firewall_group_id: str
    reserved_ip_id: str
    certificate_names: tuple[str, ...]
    allow_replacement: bool = False
    os_id: int | None = dataclasses.field(default=None, metadata=OUTPUT)
    main_ip: str | None = dataclasses.field(default=None, metadata=OUTPUT)
    ready: str | None = dataclasses.field(default=None, metadata=OUTPUT)  # "yes", or what it is waiting for
    created_user_data_digest: str | None = dataclasses.field(default=None, metadata=OUTPUT)

    def schedule(self) -> dict[str, Any]:
        return {
            "type": self.backup_type,
            "hour": self.backup_hour,
            "dow": self.backup_day_of_week,
            "dom": self.backup_day_of_month,
        }


IGNORED = (*NOT_COMPARED, "user_data", "user_data_digest", "allow_replacement")


def _backups(on: bool) -> str:
    return "enabled" if on else "disabled"


def _wait(api: VultrApi, instance_id: str) -> tuple[str, str]:
    """(main IP, readiness) once the VM is ready, or as far as it got by the deadline."""
    try:
        instance = api.wait_for_instance(instance_id, timeout=WAIT_SECONDS, poll=POLL_SECONDS)
    except VultrError as error:
        found = api.instance(instance_id)
        if found is None:
            raise
        print(f"warning: {error}", flush=True)
        return str(found.get("main_ip")), "waiting for " + ", ".join(not_ready(found))
    return str(instance["main_ip"]), "yes"


class InstanceProvider(VultrProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Refuse, at preview, a change that would replace the VM, unless replacement is allowed."""
        failures = []
        if olds and not news.get("allowReplacement"):
            for field, setting in REPLACED_BY.items():
                key = camel(field)
                old, new = olds.get(key), news.get(key)
                if key in olds and new != UNKNOWN and old != new:
                    failures.append(
                        CheckFailure(
                            key,
                            f"{NAMESPACE}:{setting}: this change would replace the datastore VM, and its database "
                            f"would be lost with it (from {old!r} to {new!r}). Keep it as it was; or replace the VM "
                            "on purpose: take a dump, then set datastore.vultr.allowReplacement to true and "
                            "unprotect the VM and its address (see README, Replacing the datastore)",
                        )
                    )
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        wanted = InstanceProps.from_props(props)
        api = wanted.api()
        try:
            os_id = api.os_id(wanted.os)
        except VultrError as error:
            raise VultrError(f"{NAMESPACE}:datastore.vultr.os: {error}") from None
        body = {
            "region": wanted.region,
            "plan": wanted.plan,
            "os_id": os_id,
            "label": wanted.label,
            "hostname": wanted.hostname,
            "tags": list(wanted.tags),
            "user_data": wanted.user_data,
            "backups": _backups(wanted.backups),
            "firewall_group_id": wanted.firewall_group_id,
            "reserved_ipv4": wanted.reserved_ip_id,
        }
        try:
            instance_id = api.post("/instances", body)["instance"]["id"]
        except VultrError as error:
            if error.status != 400:
                raise
            raise VultrError(
                f"{error}: Vultr refused the VM as configured; check {NAMESPACE}:datastore.vultr.region and plan "
                "(a plan is offered in some regions only: GET /v2/plans lists each plan's locations)",
                status=error.status,
                api_error=error.api_error,
            ) from None
        main_ip, ready = _wait(api, instance_id)
        if wanted.backups and ready == "yes":
            api.post(f"/instances/{instance_id}/backup-schedule", wanted.schedule())
        made = dataclasses.replace(
            wanted, os_id=os_id, main_ip=main_ip, ready=ready, created_user_data_digest=wanted.user_data_digest
        )
        return CreateResult(id_=instance_id, outs=made.to_props())

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, InstanceProps, ignore=IGNORED)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        old, wanted = InstanceProps.from_props(olds), InstanceProps.from_props(news)
        api = wanted.api()
        changes: dict[str, Any] = {}
        if wanted.plan != old.plan:
            changes["plan"] = wanted.plan
        if wanted.label != old.label:
            changes["label"] = wanted.label
        if wanted.tags != old.tags:
            changes["tags"] = list(wanted.tags)
        if wanted.firewall_group_id != old.firewall_group_id:
            changes["firewall_group_id"] = wanted.firewall_group_id
        if wanted.backups != old.backups:
            changes["backups"] = _backups(wanted.backups)
        if changes:
            api.patch(f"/instances/{id_}", changes)
        if wanted.backups and (changes.get("backups") or wanted.schedule() != old.schedule()):
            api.post(f"/instances/{id_}/backup-schedule", wanted.schedule())
        kept = dataclasses.replace(
            wanted,
            user_data=old.user_data,  # what cloud-init ran; a new one applies to a new VM only
            os_id=old.os_id,
            main_ip=old.main_ip,
            ready=old.ready,
            created_user_data_digest=old.created_user_data_digest,
        )
        return UpdateResult(outs=kept.to_props())

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        state = InstanceProps.from_props(props)
        api = self.api(state)
        instance = api.instance(id_)
        if instance is None:
            return ReadResult(id_=None, outs={})
        backups = "auto_backups" in instance.get("features", [])
        schedule: dict[str, Any] = {}
        if backups:
            schedule = (api.get(f"/instances/{id_}/backup-schedule") or {}).get("backup_schedule", {})
        missing = not_ready(instance)
        read = dataclasses.replace(
            state,
            region=instance["region"],
            plan=instance["plan"],
            hostname=instance["hostname"],
            label=instance["label"],
            tags=tuple(instance.get("tags", [])),
            backups=backups,
            backup_type=schedule.get("type", state.backup_type),
            backup_hour=int(schedule.get("hour", state.backup_hour)),
            backup_day_of_week=int(schedule.get("dow", state.backup_day_of_week)),
            backup_day_of_month=int(schedule.get("dom", state.backup_day_of_month)),
            firewall_group_id=instance.get("firewall_group_id", ""),
            main_ip=instance.get("main_ip"),
            ready="yes" if not missing else "waiting for " + ", ".join(missing),
        )
        return ReadResult(id_=id_, outs=read.to_props())

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self.api(InstanceProps.from_props(props)).delete(f"/instances/{id_}")


class Instance(TypedResource, module="ephemeros", name="VultrInstance"):
    """A VM made from `os` with `user_data` (base64), `reserved_ip_id` as its main address."""

    ready: pulumi.Output[str]

    def __init__(self, name: str, *, props: dict[str, pulumi.Input[Any]], opts: pulumi.ResourceOptions | None) -> None:
        """`props`: InstanceProps' fields (snake_case) as keyword values."""
        super().__init__(InstanceProvider(), name, InstanceProps, InstanceProps.inputs(**props), opts)
