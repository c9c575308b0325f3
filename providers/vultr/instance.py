"""Instance: the datastore's VM at Vultr, with its reserved IPv4 as main address and its firewall group.

What the API lets change in place changes in place (PATCH: plan upgrade, label, tags, firewall group, automatic
backups; the backup schedule). What would make a new VM (region, operating system, host name, the reserved IP,
the names in its certificate) is refused at preview (`check`), naming the setting, unless replacement is allowed:
a new VM is a new, empty database. A VM replaced while it keeps its reserved IP (a new operating system or host
name) is deleted before its successor is made, as Vultr attaches a reserved IP to one VM at a time; a VM that
moves to a new reserved IP (another region) is deleted after. The user data is read by cloud-init once, when the
VM is made: a later change never replaces the VM; the state keeps the digest of the user data the VM was made
with, so the program can say at preview that a change applies to a new VM only.

The digest the VM was made with is an output, and `check` carries it into the inputs too: during a preview
Pulumi shows an updated resource's inputs as its outputs, and the program compares it with the digest of now.

Create waits until the VM is active, running, installed and has its address; if it is not by the deadline, the
VM is still recorded (an unrecorded VM would be billed and forgotten) with what it was waiting for in `ready`.
The VM carries its mark as a tag (providers.vultr.account): a VM that a run cut short made is adopted, with the
user data it was made with.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult

from providers.props import OUTPUT, SECRET, TypedResource, camel, diff, is_unknown
from providers.vultr.account import NOT_COMPARED, VultrProps, VultrProvider, mark_tag, owner, untagged
from providers.vultr.api import Json, VultrApi, VultrError, not_ready
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
    created_user_data_digest: str | None = dataclasses.field(default=None, metadata=OUTPUT)  # see the docstring

    def tags_at_vultr(self) -> list[str]:
        return [*self.tags, mark_tag(self.mark)] if self.mark else list(self.tags)

    def schedule(self) -> dict[str, Any]:
        return {
            "type": self.backup_type,
            "hour": self.backup_hour,
            "dow": self.backup_day_of_week,
            "dom": self.backup_day_of_month,
        }


IGNORED = (*NOT_COMPARED, "user_data", "user_data_digest", "allow_replacement")
CREATED_DIGEST = camel("created_user_data_digest")
ADOPTED_OTHER_USER_DATA = "adopted: made by a run cut short, with other user data than now"


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
        """Refuse, at preview, a change that would replace the VM, unless replacement is allowed; carry the digest
        of the user data the VM was made with."""
        failures = []
        replaced = {}
        for field, setting in REPLACED_BY.items():
            key = camel(field)
            old, new = olds.get(key), news.get(key)
            if key in olds and not is_unknown(new) and old != new:
                replaced[field] = (setting, old, new)
        if not news.get("allowReplacement"):
            for field, (setting, old, new) in replaced.items():
                failures.append(
                    CheckFailure(
                        camel(field),
                        f"{NAMESPACE}:{setting}: this change would replace the datastore VM, and its database "
                        f"would be lost with it (from {old!r} to {new!r}). Keep it as it was; or replace the VM "
                        "on purpose: take a dump, then set datastore.vultr.allowReplacement to true and "
                        "unprotect the VM and its address (see README, Replacing the datastore)",
                    )
                )
        made_anew = not olds or bool(replaced)
        # An older state has no created digest among its inputs: the digest it was last given stands in for it.
        carried = None if made_anew else olds.get(CREATED_DIGEST, olds.get("userDataDigest"))
        return CheckResult({**news, CREATED_DIGEST: carried or news.get("userDataDigest")}, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        wanted = InstanceProps.from_props(props).to_make()
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
            "tags": wanted.tags_at_vultr(),
            "user_data": wanted.user_data,
            "backups": _backups(wanted.backups),
            "firewall_group_id": wanted.firewall_group_id,
            "reserved_ipv4": wanted.reserved_ip_id,
        }

        def find() -> Json | None:
            if not wanted.mark:
                return None
            found = api.list("/instances", "instances", params={"tag": mark_tag(wanted.mark)})
            return found[0] if found else None

        try:
            instance, adopted = api.create("/instances", body, "instance", find=find)
        except VultrError as error:
            if error.status != 400:
                raise
            raise VultrError(
                f"{error}: Vultr refused the VM as configured; check {NAMESPACE}:datastore.vultr.region and plan "
                "(a plan is offered in some regions only: GET /v2/plans lists each plan's locations)",
                status=error.status,
                api_error=error.api_error,
            ) from None
        instance_id = instance["id"]
        made = dataclasses.replace(wanted, os_id=os_id, created_user_data_digest=wanted.user_data_digest)
        if adopted:
            made = _adopted(api, made, instance)
        main_ip, ready = _wait(api, instance_id)
        if made.backups and ready == "yes":
            api.act(f"/instances/{instance_id}/backup-schedule", wanted.schedule())
        return CreateResult(id_=instance_id, outs=dataclasses.replace(made, main_ip=main_ip, ready=ready).to_props())

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        news = _same_address(olds, news)
        address = news.get("reservedIpId")
        keeps_address = not is_unknown(address) and address == olds.get("reservedIpId")
        return diff(olds, news, InstanceProps, ignore=IGNORED, delete_before_replace=keeps_address)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        old = InstanceProps.from_props(olds)
        wanted = dataclasses.replace(InstanceProps.from_props(news), mark=old.mark)
        api = wanted.api()
        changes: dict[str, Any] = {}
        if wanted.plan != old.plan:
            changes["plan"] = wanted.plan
        if wanted.label != old.label:
            changes["label"] = wanted.label
        if wanted.tags != old.tags:
            changes["tags"] = wanted.tags_at_vultr()
        if wanted.firewall_group_id != old.firewall_group_id:
            changes["firewall_group_id"] = wanted.firewall_group_id
        if wanted.backups != old.backups:
            changes["backups"] = _backups(wanted.backups)
        if changes:
            api.patch(f"/instances/{id_}", changes)
        if wanted.backups and (changes.get("backups") or wanted.schedule() != old.schedule()):
            api.act(f"/instances/{id_}/backup-schedule", wanted.schedule())
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
        return ReadResult(id_=id_, outs=_observed(api, state, instance).to_props())

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self.api(InstanceProps.from_props(props)).delete(f"/instances/{id_}")


def _same_address(olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
    """`news` with the reserved IP's address as it was when the reserved IP is the same one: at a preview in which
    it is updated (relabelled, say) its address is not known, though a reserved IP keeps its address for life, and
    an unknown name in the certificate would replace the VM."""
    names, old_names = news.get("certificateNames"), olds.get("certificateNames")
    same_ip = not is_unknown(news.get("reservedIpId")) and news.get("reservedIpId") == olds.get("reservedIpId")
    if not (same_ip and isinstance(names, list | tuple) and isinstance(old_names, list | tuple) and names):
        return news
    if is_unknown(names[0]) and not is_unknown(names[1:]) and list(names[1:]) == list(old_names[1:]):
        return {**news, "certificateNames": [old_names[0], *names[1:]]}
    return news


def _observed(api: VultrApi, state: InstanceProps, instance: Json) -> InstanceProps:
    """`state` with what Vultr says the instance is now."""
    backups = "auto_backups" in instance.get("features", [])
    schedule: dict[str, Any] = {}
    if backups:
        schedule = (api.get(f"/instances/{instance['id']}/backup-schedule") or {}).get("backup_schedule", {})
    missing = not_ready(instance)
    return dataclasses.replace(
        state,
        region=instance["region"],
        plan=instance["plan"],
        hostname=instance["hostname"],
        label=instance["label"],
        tags=untagged(instance.get("tags", []), state.mark),
        backups=backups,
        backup_type=schedule.get("type", state.backup_type),
        backup_hour=int(schedule.get("hour", state.backup_hour)),
        backup_day_of_week=int(schedule.get("dow", state.backup_day_of_week)),
        backup_day_of_month=int(schedule.get("dom", state.backup_day_of_month)),
        firewall_group_id=instance.get("firewall_group_id", ""),
        main_ip=instance.get("main_ip"),
        ready="yes" if not missing else "waiting for " + ", ".join(missing),
    )


def _adopted(api: VultrApi, made: InstanceProps, instance: Json) -> InstanceProps:
    """A VM that a run cut short made, as it is: the next preview shows what differs from the settings of now."""
    found = api.get(f"/instances/{instance['id']}/user-data") or {}
    user_data = str((found.get("user_data") or {}).get("data", ""))
    observed = _observed(api, made, instance)
    if user_data == made.user_data:
        return observed
    return dataclasses.replace(observed, user_data=user_data, created_user_data_digest=ADOPTED_OTHER_USER_DATA)


class Instance(TypedResource, module="ephemeros", name="VultrInstance"):
    """A VM made from `os` with `user_data` (base64), `reserved_ip_id` as its main address."""

    ready: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        owner_id: pulumi.Input[str],
        props: dict[str, pulumi.Input[Any]],
        opts: pulumi.ResourceOptions | None,
    ) -> None:
        """`owner_id`: the datastore's (a RandomId's); `props`: InstanceProps' fields (snake_case) as keyword
        values."""
        inputs = InstanceProps.inputs(**props, owner=owner(owner_id, name))
        super().__init__(InstanceProvider(), name, InstanceProps, inputs, opts)
