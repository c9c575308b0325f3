"""FirewallGroup: a Vultr firewall group, which the datastore's VM belongs to; its rules are FirewallRules."""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, UpdateResult

from providers.props import TypedResource, diff
from providers.vultr.account import NOT_COMPARED, VultrProps, VultrProvider


@dataclasses.dataclass(frozen=True, kw_only=True)
class FirewallGroupProps(VultrProps):
    description: str


class FirewallGroupProvider(VultrProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        wanted = FirewallGroupProps.from_props(props)
        answer = wanted.api().post("/firewalls", {"description": wanted.description})
        return CreateResult(id_=answer["firewall_group"]["id"], outs=wanted.to_props())

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, FirewallGroupProps, ignore=NOT_COMPARED)

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        wanted = FirewallGroupProps.from_props(news)
        wanted.api().put(f"/firewalls/{id_}", {"description": wanted.description})
        return UpdateResult(outs=wanted.to_props())

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        state = FirewallGroupProps.from_props(props)
        answer = self.api(state).get(f"/firewalls/{id_}")
        if answer is None:
            return ReadResult(id_=None, outs={})
        found = answer["firewall_group"]
        return ReadResult(id_=id_, outs=dataclasses.replace(state, description=found["description"]).to_props())

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self.api(FirewallGroupProps.from_props(props)).delete(f"/firewalls/{id_}")


class FirewallGroup(TypedResource, module="ephemeros", name="VultrFirewallGroup"):
    """A firewall group described as `description`; its id is the resource's id."""

    def __init__(
        self, name: str, *, api_url: str, api_key: str, description: str, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        inputs = FirewallGroupProps.inputs(api_url=api_url, api_key=api_key, description=description)
        super().__init__(FirewallGroupProvider(), name, FirewallGroupProps, inputs, opts)
