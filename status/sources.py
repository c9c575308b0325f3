"""Where `make status` reads from: the pulumi CLI (the stack's `nodes` output, its settings, its healthchecks key,
which stays in memory and is never printed) and the healthchecks API v3 (the checks, their pings and bodies)."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from providers.healthchecks_api import API_KEY_SETTING, ApiKey, HealthchecksApi
from settings import NAMESPACE
from settings.heartbeat_plan import node_check_name
from settings.model import Heartbeat
from settings.types import DnsName
from status.report import Heartbeat as Body
from status.report import NodeStatus, expected, parse_body

RETRIES = 2


class SourceError(RuntimeError):
    """A source could not be read; the message says which and what to do."""


def pulumi(stack: str, *args: str) -> str:
    done = subprocess.run(
        ["pulumi", *args, "--stack", stack], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        # The command is named without its output, which may hold a secret; its error text holds none.
        raise SourceError(f"`pulumi {args[0]} {args[1]} ... --stack {stack}` failed: {done.stderr.strip()}")
    return done.stdout


def nodes_output(stack: str) -> dict[str, dict[str, Any]]:
    """What `pulumi up` last made, by hostname."""
    nodes: dict[str, dict[str, Any]] = json.loads(pulumi(stack, "stack", "output", "nodes", "--json"))
    return nodes


def stack_config(stack: str) -> dict[str, Any]:
    """The stack's settings by key without namespace; secret values are not shown and not needed."""
    config = json.loads(pulumi(stack, "config", "--json"))
    prefix = f"{NAMESPACE}:"
    return {
        key[len(prefix) :]: entry.get("objectValue", entry.get("value"))
        for key, entry in config.items()
        if key.startswith(prefix)
    }


def heartbeat_settings(config: dict[str, Any]) -> Heartbeat | None:
    """The stack's heartbeat settings, None when heartbeats are off."""
    document = config.get("heartbeat")
    if not isinstance(document, dict) or document.get("enabled") is False:
        return None
    try:
        return Heartbeat.model_validate(document)
    except ValidationError:
        raise SourceError("the stack's heartbeat settings are not valid: `make preview` says what is wrong") from None


def api_key(stack: str) -> str:
    return pulumi(stack, "config", "get", API_KEY_SETTING).strip()


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _domain(domain: str) -> str:
    """The stack's domain as its settings read it (lower case, no final dot), which the checks are named from."""
    try:
        return TypeAdapter(DnsName).validate_python(domain)
    except ValidationError:
        raise SourceError(f"the stack's domain {domain!r} is not valid: `make preview` says what is wrong") from None


def node_statuses(nodes: dict[str, dict[str, Any]], domain: str, api: HealthchecksApi) -> list[NodeStatus]:
    """Each node's check (named as settings.heartbeat_plan names it), last ping and newest heartbeat body."""
    checks = {check.get("name"): check for check in api.checks()}
    domain = _domain(domain)
    found = []
    for hostname, summary in nodes.items():
        name = node_check_name(hostname, domain)
        check = checks.get(name)
        body: Body | None = None
        if check is not None and "uuid" in check:
            newest = next((p for p in api.pings(name, check["uuid"]) if p.get("body_url")), None)
            text = api.ping_body(name, check["uuid"], int(newest["n"])) if newest is not None else None
            body = parse_body(text) if text is not None else None
        found.append(
            NodeStatus(
                hostname=hostname,
                role=str(summary.get("role", "?")),
                check=check.get("status") if check is not None else None,
                last_ping=_when(check.get("last_ping")) if check is not None else None,
                heartbeat=body,
                made=expected(summary),
            )
        )
    return found


def healthchecks(api_url: str, key: str) -> HealthchecksApi:
    return HealthchecksApi(api_url, ApiKey.configured(key), retries=RETRIES)
