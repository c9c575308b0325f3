"""ReservedIp: a reserved IPv4 address at Vultr, so that the datastore's address outlives any one VM."""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, UpdateResult

from providers.props import OUTPUT, TypedResource, diff
from providers.vultr.account import NOT_COMPARED, VultrProps, VultrProvider


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReservedIpProps(VultrProps):
    REPLACE_ON = ("region",)

    region: str
    label: str
    address: str | None = dataclasses.field(default=None, metadata=OUTPUT)


def _state(wanted: ReservedIpProps, answer: dict[str, Any]) -> dict[str, Any]:
    found = answer["reserved_ip"]
    return dataclasses.replace(wanted, region=found["region"], label=found["label"], address=found["subnet"]).to_props()


class ReservedIpProvider(VultrProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        wanted = ReservedIpProps.from_props(props)
        answer = wanted.api().post("/reserved-ips", {"region": wanted.region, "ip_type": "v4", "label": wanted.label})
        return CreateResult(id_=answer["reserved_ip"]["id"], outs=_state(wanted, answer))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, ReservedIpProps, ignore=NOT_COMPARED)

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        wanted = ReservedIpProps.from_props(news)
        answer = wanted.api().patch(f"/reserved-ips/{id_}", {"label": wanted.label})
        return UpdateResult(outs=_state(wanted, answer))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        state = ReservedIpProps.from_props(props)
        answer = self.api(state).get(f"/reserved-ips/{id_}")
        if answer is None:
            return ReadResult(id_=None, outs={})
        return ReadResult(id_=id_, outs=_state(state, answer))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self.api(ReservedIpProps.from_props(props)).delete(f"/reserved-ips/{id_}")


class ReservedIp(TypedResource, module="ephemeros", name="VultrReservedIp"):
    """A reserved IPv4 in `region`; `address` is the address."""

    address: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        api_url: str,
        api_key: str,
        region: str,
        label: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = ReservedIpProps.inputs(api_url=api_url, api_key=api_key, region=region, label=label)
        super().__init__(ReservedIpProvider(), name, ReservedIpProps, inputs, opts)
