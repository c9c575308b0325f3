"""FirewallRule: one rule of a Vultr firewall group. The API has no update for rules: any change replaces the
rule, the old one deleted first (the API refuses a second identical rule). Its notes carry its mark
(providers.vultr.account), by which a run cut short is adopted."""

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
class FirewallRuleProps(VultrProps):
    REPLACE_ON = ("group_id", "protocol", "subnet", "subnet_size", "port", "notes")

    group_id: str
    protocol: str  # tcp, udp, icmp
    subnet: str
    subnet_size: int
    port: str
    notes: str


class FirewallRuleProvider(VultrProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        wanted = FirewallRuleProps.from_props(props).to_make()
        body = {
            "ip_type": "v4",
            "protocol": wanted.protocol,
            "subnet": wanted.subnet,
            "subnet_size": wanted.subnet_size,
            "port": wanted.port,
            "notes": marked(wanted.notes, wanted.mark),
        }
        api = wanted.api()
        rules = f"/firewalls/{wanted.group_id}/rules"
        found, _ = api.create(
            rules,
            body,
            "firewall_rule",
            find=lambda: first_marked(api.list(rules, "firewall_rules"), "notes", wanted.mark),
        )
        return CreateResult(id_=str(found["id"]), outs=wanted.to_props())

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, FirewallRuleProps, ignore=NOT_COMPARED, delete_before_replace=True)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Only where the API is, or its key, changed (anything else replaces the rule): nothing to tell Vultr."""
        kept = dataclasses.replace(FirewallRuleProps.from_props(news), mark=FirewallRuleProps.from_props(olds).mark)
        return UpdateResult(outs=kept.to_props())

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        state = FirewallRuleProps.from_props(props)
        answer = self.api(state).get(f"/firewalls/{state.group_id}/rules/{id_}")
        if answer is None:
            return ReadResult(id_=None, outs={})
        found = answer["firewall_rule"]
        read = dataclasses.replace(
            state,
            protocol=found["protocol"],
            subnet=found["subnet"],
            subnet_size=int(found["subnet_size"]),
            port=found["port"],
            notes=unmarked(found["notes"]),
        )
        return ReadResult(id_=id_, outs=read.to_props())

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        state = FirewallRuleProps.from_props(props)
        self.api(state).delete(f"/firewalls/{state.group_id}/rules/{id_}")


class FirewallRule(TypedResource, module="ephemeros", name="VultrFirewallRule"):
    """Let IPv4 `subnet`/`subnet_size` reach `port` over `protocol`. `owner_id`: the datastore's."""

    def __init__(
        self,
        name: str,
        *,
        api_url: str,
        api_key: str,
        owner_id: pulumi.Input[str],
        group_id: pulumi.Input[str],
        protocol: str,
        subnet: str,
        subnet_size: int,
        port: str,
        notes: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = FirewallRuleProps.inputs(
            api_url=api_url,
            api_key=api_key,
            owner=owner(owner_id, name),
            group_id=group_id,
            protocol=protocol,
            subnet=subnet,
            subnet_size=subnet_size,
            port=port,
            notes=notes,
        )
        super().__init__(FirewallRuleProvider(), name, FirewallRuleProps, inputs, opts)
