"""Heartbeat checks at healthchecks, from the check specs in settings.heartbeat_plan."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi

from providers.healthchecks import HeartbeatCheck
from settings.credentials import Credentials
from settings.heartbeat_plan import CheckSpec
from settings.model import Settings


def heartbeat_check(
    resource_name: str,
    spec: CheckSpec,
    settings: Settings,
    credentials: Credentials,
    opts: pulumi.ResourceOptions,
    known_ping_urls: Mapping[str, str] | None = None,
) -> HeartbeatCheck:
    """The check `spec` describes; `known_ping_urls` (check name -> ping URL, read at preview by stack.services)
    makes its ping URL known while it changes, when the API has a check of that name already."""
    if settings.heartbeat is None or credentials.healthchecks_api_key is None:
        raise ValueError("a heartbeat check needs heartbeat settings and healthchecksApiKey (settings.rules checks)")
    return HeartbeatCheck(
        resource_name,
        api_url=settings.heartbeat.api_url,
        api_key=credentials.healthchecks_api_key,
        name=spec.name,
        slug=spec.slug,
        desc=spec.desc,
        tags=spec.tags,
        timeout=spec.timeout,
        grace=spec.grace,
        channels=spec.channels,
        known_ping_url=(known_ping_urls or {}).get(spec.name),
        opts=opts,
    )
