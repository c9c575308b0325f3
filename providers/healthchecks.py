"""HeartbeatCheck: a check at healthchecks.io (or a self-hosted Healthchecks), through its Management API v3
(providers.healthchecks_api).

Create asks the API for an upsert on the check's name (`unique`), so a retried create never duplicates a check.
A changed period, grace, tags or channels updates the check in place, and so does a new `apiUrl`: when it names
another server, the check is made there and the old one deleted, but only if it is another check (its UUID
differs). A new name replaces the check. `pulumi refresh` reads the check back and notices one deleted or edited
by hand, channels included: what the stack asks for ("*", names or ids) is resolved through the API's channel list
and compared with the check's channel ids. 429 and 5xx answers are retried with backoff (honouring Retry-After).
Every error names the check and carries the API's own message.

Each check carries its owner's mark in its description: a resource deletes a check only while the check is still
its own, so when a new resource adopts a check by its name (the cluster was renamed, so resource names changed
while check names did not), deleting the old resource leaves the adopted check alone.

The check's UUID is its ping secret (the ping URL is built from it), so the resource's id is the check's name and
the UUID and ping URL are secret outputs. The API key is a secret input; refresh and delete use the key in the
stack's configuration when one is set (so a rotated key works; the engine hands over the configuration of now
only when it runs the program), else the one stored when the check was made.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import pulumi
from pulumi.dynamic import (
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from providers.configured import configured_credential
from providers.healthchecks_api import (
    API_KEY_SETTING,
    ApiKey,
    HealthchecksApi,
    HealthchecksError,
    KeyRefused,
)
from providers.props import OUTPUT, SECRET, SECRET_OUTPUT, Props, TypedResource, diff

__all__ = [
    "API_KEY_SETTING",
    "ApiKey",
    "HealthchecksApi",
    "HealthchecksError",
    "HeartbeatCheck",
    "HeartbeatCheckProvider",
]

OWNER_MARK = re.compile(r"\s*\[ephemeros owner ([0-9a-f]{16})\]$")
T = TypeVar("T")


@dataclasses.dataclass(frozen=True, kw_only=True)
class HeartbeatCheckProps(Props):
    REPLACE_ON = ("name",)

    api_url: str
    api_key: str = dataclasses.field(repr=False, metadata=SECRET)
    name: str
    slug: str
    desc: str
    tags: tuple[str, ...]
    timeout: int  # seconds between pings
    grace: int
    channels: str  # "*", "" or a comma-separated list of channel names or ids
    uuid: str | None = dataclasses.field(default=None, repr=False, metadata=SECRET_OUTPUT)
    ping_url: str | None = dataclasses.field(default=None, repr=False, metadata=SECRET_OUTPUT)
    owner: str | None = dataclasses.field(default=None, metadata=OUTPUT)

    def api_spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "slug": self.slug,
            "desc": f"{self.desc} [ephemeros owner {self.owner}]",
            "tags": " ".join(self.tags),
            "timeout": self.timeout,
            "grace": self.grace,
            "channels": self.channels,
        }


def _owner(check: dict[str, Any]) -> str | None:
    mark = OWNER_MARK.search(check.get("desc", ""))
    return mark.group(1) if mark else None


def _state(wanted: HeartbeatCheckProps, check: dict[str, Any], channels: str) -> dict[str, Any]:
    """What Pulumi keeps: the settings as the API now has them, and the (secret) UUID and ping URL."""
    return dataclasses.replace(
        wanted,
        name=check["name"],
        slug=check.get("slug", wanted.slug),
        desc=OWNER_MARK.sub("", check.get("desc", "")),
        tags=tuple(check["tags"].split()),
        timeout=int(check.get("timeout", wanted.timeout)),
        grace=int(check["grace"]),
        channels=channels,
        uuid=check["uuid"],
        ping_url=check["ping_url"],
        owner=_owner(check),
    ).to_props()


class HeartbeatCheckProvider(ResourceProvider):
    configured_key: str | None = None

    def configure(self, req: ConfigureRequest) -> None:
        self.configured_key = configured_credential(req, API_KEY_SETTING)

    def _keys(self, state: HeartbeatCheckProps) -> list[ApiKey]:
        """The keys to try, in order: the stack's configuration's (a rotated key), then the state's."""
        if self.configured_key is None:
            return [ApiKey.stored(state.api_key)]
        if self.configured_key == state.api_key:
            return [ApiKey.configured_and_stored(state.api_key)]
        return [ApiKey.configured(self.configured_key), ApiKey.stored(state.api_key)]

    def _api(self, state: HeartbeatCheckProps, call: Callable[[HealthchecksApi], T]) -> tuple[HealthchecksApi, T]:
        """Call the check's API with the key in the stack's configuration when one is set (a rotated key), and with
        the key stored in the state when that one is refused or unset (the check moved to another server)."""
        keys = self._keys(state)
        refused: list[KeyRefused] = []
        for key in keys:
            api = HealthchecksApi(state.api_url, key)
            try:
                return api, call(api)
            except KeyRefused as error:
                refused.append(error)
        if len(refused) == 1:
            raise refused[0]
        raise KeyRefused(
            f"{refused[-1]}; before it, {keys[0].origin} was refused too: set {API_KEY_SETTING} to the project's "
            "current read-write key",
            401,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        wanted = dataclasses.replace(HeartbeatCheckProps.from_props(props), owner=secrets.token_hex(8))
        check = HealthchecksApi(wanted.api_url, ApiKey.configured(wanted.api_key)).upsert(wanted.api_spec())
        return CreateResult(id_=wanted.name, outs=_state(wanted, check, wanted.channels))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff(olds, news, HeartbeatCheckProps)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        old = HeartbeatCheckProps.from_props(olds)
        wanted = dataclasses.replace(HeartbeatCheckProps.from_props(news), owner=old.owner)
        api = HealthchecksApi(wanted.api_url, ApiKey.configured(wanted.api_key))
        if wanted.api_url == old.api_url and old.uuid is not None:
            check = api.update(old.uuid, wanted.api_spec())
        else:
            check = api.upsert(wanted.api_spec())
            if check["uuid"] != old.uuid:  # another server: the old check is another check, made by this resource
                self._delete_own(old)
        return UpdateResult(outs=_state(wanted, check, wanted.channels))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        state = HeartbeatCheckProps.from_props(props)
        if state.uuid is None:
            return ReadResult(id_=None, outs={})
        uuid = state.uuid
        api, check = self._api(state, lambda api: api.get(state.name, uuid))
        if check is None:
            return ReadResult(id_=None, outs={})
        actual = set(filter(None, check.get("channels", "").split(",")))
        # Keep what the stack asks for while the check has exactly those channels; otherwise record what it has.
        channels = state.channels if actual == api.channel_ids(state.name, state.channels) else ",".join(sorted(actual))
        return ReadResult(id_=id_, outs=_state(state, check, channels))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        self._delete_own(HeartbeatCheckProps.from_props(props))

    def _delete_own(self, state: HeartbeatCheckProps) -> None:
        """Delete the check, unless another resource has adopted it since (its owner mark is not this one's)."""
        uuid = state.uuid
        if uuid is None:
            return
        api, check = self._api(state, lambda api: api.get(state.name, uuid))
        if check is None or _owner(check) not in (state.owner, None):
            return
        api.delete(state.name, uuid)


class HeartbeatCheck(TypedResource, module="ephemeros", name="HeartbeatCheck"):
    """A healthchecks check named `name`, expecting a ping every `timeout` seconds.

    `known_ping_url` is the ping URL of the check of that name the API already has (read at preview): creating
    or updating the check keeps it (creates are upserts on the name), so `ping_url` is known while the check
    changes, and what carries it (a stick) changes only when it does.
    """

    uuid: pulumi.Output[str]
    pingUrl: pulumi.Output[str]

    @property
    def ping_url(self) -> pulumi.Output[str]:
        if self.known_ping_url is not None:
            return pulumi.Output.secret(self.known_ping_url)
        return self.pingUrl

    def __init__(
        self,
        resource_name: str,
        *,
        api_url: str,
        api_key: pulumi.Input[str],
        name: str,
        slug: str,
        desc: str,
        tags: tuple[str, ...],
        timeout: int,
        grace: int,
        channels: str,
        known_ping_url: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        self.known_ping_url = known_ping_url
        inputs = HeartbeatCheckProps.inputs(
            api_url=api_url,
            api_key=api_key,
            name=name,
            slug=slug,
            desc=desc,
            tags=tags,
            timeout=timeout,
            grace=grace,
            channels=channels,
        )
        super().__init__(HeartbeatCheckProvider(), resource_name, HeartbeatCheckProps, inputs, opts)
