"""ReservedIp: a reserved IPv4 address at Vultr, so that the datastore's address outlives any one VM. Its label
carries its mark (providers.vultr.account), by which a run cut short is adopted."""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, UpdateResult

from providers.props import OUTPUT, TypedResource, diff
from providers.vultr.account import (
    NOT_COMPARED,
    VultrProps,
    VultrProvider,
    first_marked,
    marked,
    owner,
    unmarked,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReservedIpProps(VultrProps):
    REPLACE_ON = ("region",)

    region: str
    label: str
    address: str | None = dataclasses.field(default=None, metadata=OUTPUT)


def _state(wanted: ReservedIpProps, found: dict[str, Any]) -> dict[str, Any]:
    return dataclasses.replace(
        wanted, region=found["region"], label=unmarked(found["label"]), address=found["subnet"]
    ).to_props()


class ReservedIpProvider(VultrProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        wanted = ReservedIpProps.from_props(props).to_make()
        api = wanted.api()
        body = {"region": wanted.region, "ip_type": "v4", "label": marked(wanted.label, wanted.mark)}
        found, _ = api.create(
            "/reserved-ips",
            body,
            "reserved_ip",
            find=lambda: first_marked(api.list("/reserved-ips", "reserved_ips"), "label", wanted.mark),
        )
        return CreateResult(id_=found["id"], outs=_state(wanted, found))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, ReservedIpProps, ignore=NOT_COMPARED)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        wanted = dataclasses.replace(ReservedIpProps.from_props(news), mark=ReservedIpProps.from_props(olds).mark)
        answer = wanted.api().patch(f"/reserved-ips/{id_}", {"label": marked(wanted.label, wanted.mark)})
        return UpdateResult(outs=_state(wanted, answer["reserved_ip"]))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        state = ReservedIpProps.from_props(props)
        answer = self.api(state).get(f"/reserved-ips/{id_}")
        if answer is None:
            return ReadResult(id_=None, outs={})
        return ReadResult(id_=id_, outs=_state(state, answer["reserved_ip"]))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self.api(ReservedIpProps.from_props(props)).delete(f"/reserved-ips/{id_}")


class ReservedIp(TypedResource, module="ephemeros", name="VultrReservedIp"):
    """A reserved IPv4 in `region`; `address` is the address. `owner_id`: the datastore's (a RandomId's)."""

    address: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        api_url: str,
        api_key: str,
        owner_id: pulumi.Input[str],
        region: str,
        label: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = ReservedIpProps.inputs(
            api_url=api_url, api_key=api_key, owner=owner(owner_id, name), region=region, label=label
        )
        super().__init__(ReservedIpProvider(), name, ReservedIpProps, inputs, opts)
