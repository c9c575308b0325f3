"""FirewallGroup: a Vultr firewall group, which the datastore's VM belongs to; its rules are FirewallRules. Its
description carries its mark (providers.vultr.account), by which a run cut short is adopted."""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, UpdateResult

from providers.props import TypedResource, diff
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
class FirewallGroupProps(VultrProps):
    description: str


class FirewallGroupProvider(VultrProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        wanted = FirewallGroupProps.from_props(props).to_make()
        api = wanted.api()
        found, _ = api.create(
            "/firewalls",
            {"description": marked(wanted.description, wanted.mark)},
            "firewall_group",
            find=lambda: first_marked(api.list("/firewalls", "firewall_groups"), "description", wanted.mark),
        )
        return CreateResult(id_=found["id"], outs=wanted.to_props())

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, FirewallGroupProps, ignore=NOT_COMPARED)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        wanted = dataclasses.replace(FirewallGroupProps.from_props(news), mark=FirewallGroupProps.from_props(olds).mark)
        wanted.api().put(f"/firewalls/{id_}", {"description": marked(wanted.description, wanted.mark)})
        return UpdateResult(outs=wanted.to_props())

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        state = FirewallGroupProps.from_props(props)
        answer = self.api(state).get(f"/firewalls/{id_}")
        if answer is None:
            return ReadResult(id_=None, outs={})
        found = answer["firewall_group"]
        return ReadResult(
            id_=id_, outs=dataclasses.replace(state, description=unmarked(found["description"])).to_props()
        )

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self.api(FirewallGroupProps.from_props(props)).delete(f"/firewalls/{id_}")


class FirewallGroup(TypedResource, module="ephemeros", name="VultrFirewallGroup"):
    """A firewall group described as `description`; its id is the resource's id. `owner_id`: the datastore's."""

    def __init__(
        self,
        name: str,
        *,
        api_url: str,
        api_key: str,
        owner_id: pulumi.Input[str],
        description: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = FirewallGroupProps.inputs(
            api_url=api_url, api_key=api_key, owner=owner(owner_id, name), description=description
        )
        super().__init__(FirewallGroupProvider(), name, FirewallGroupProps, inputs, opts)
