"""HeartbeatCheck: a check at healthchecks.io (or a self-hosted Healthchecks), through its Management API v3.

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
stack's configuration when one is set (so a rotated key works), else the one stored when the check was made.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import pulumi
import requests
from pulumi.dynamic import (
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from providers.configured import configured_credential
from providers.http import retrying_session
from providers.props import OUTPUT, SECRET, SECRET_OUTPUT, Props, ProviderError, TypedResource, diff

API_PATH = "/api/v3/"
TIMEOUT = 30  # seconds per request
RETRIES = 6
BACKOFF = 0.5  # seconds: retries wait 0, 1, 2, 4, 8, 16 (BACKOFF * 2**n after the first), or what Retry-After asks
API_KEY_SETTING = "healthchecksApiKey"
T = TypeVar("T")
OWNER_MARK = re.compile(r"\s*\[ephemeros owner ([0-9a-f]{16})\]$")


class HealthchecksError(ProviderError):
    """An API call about a check failed; the message names the check and gives the API's answer."""


class KeyRefused(HealthchecksError):
    """The API answered 401 to the key used."""


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


@dataclasses.dataclass(frozen=True)
class ApiKey:
    value: str = dataclasses.field(repr=False)
    origin: str  # said in errors: which key the API refused

    @classmethod
    def stored(cls, value: str) -> ApiKey:
        return cls(value, "the API key stored in the state when the check was last changed")

    @classmethod
    def configured(cls, value: str) -> ApiKey:
        return cls(value, f"the API key in the stack's configuration ({API_KEY_SETTING})")


class HealthchecksApi:
    """The few Management API v3 calls a check's life needs."""

    def __init__(self, api_url: str, key: ApiKey) -> None:
        self.base = api_url.rstrip("/") + API_PATH
        self.checks = self.base + "checks/"
        self.key = key
        self.headers = {"X-Api-Key": key.value, "User-Agent": "ephemeros"}
        # POST too: creates are upserts on the name, so repeating one is safe.
        self.session = retrying_session(retries=RETRIES, backoff=BACKOFF, methods=None)

    def _call(self, check: str, method: str, url: str, body: dict[str, Any] | None = None) -> requests.Response:
        try:
            return self.session.request(method, url, json=body, headers=self.headers, timeout=TIMEOUT)
        except requests.RequestException as error:
            # The exception's text quotes the URL, and a check's URL holds its UUID, which is a secret.
            uuid = url.removeprefix(self.checks) if url.startswith(self.checks) else ""
            reason = str(error).replace(uuid, "<check>") if uuid else str(error)
            raise HealthchecksError(
                f"healthchecks check {check!r}: {method} {self._where(url)} failed: {reason}"
            ) from None

    def _where(self, url: str) -> str:
        """The URL without a check's UUID, which is a secret."""
        return self.checks if url.startswith(self.checks) else url

    def _fail(self, check: str, method: str, url: str, response: requests.Response) -> HealthchecksError:
        try:
            message = response.json().get("error") or response.text
        except ValueError:
            message = response.text.strip()[:200] or response.reason
        hint = {
            401: f" ({self.key.origin} is missing or wrong: use the project's read-write API key)",
            403: " (the account's check limit is reached, or the check belongs to another project than "
            f"{self.key.origin})",
        }.get(response.status_code, "")
        error = KeyRefused if response.status_code == 401 else HealthchecksError
        return error(
            f"healthchecks check {check!r}: {method} {self._where(url)} answered {response.status_code}: "
            f"{message}{hint}"
        )

    def upsert(self, spec: dict[str, Any]) -> dict[str, Any]:
        response = self._call(spec["name"], "POST", self.checks, {**spec, "unique": ["name"]})
        if response.status_code not in (200, 201):
            raise self._fail(spec["name"], "POST", self.checks, response)
        check: dict[str, Any] = response.json()
        return check

    def get(self, name: str, uuid: str) -> dict[str, Any] | None:
        url = self.checks + uuid
        response = self._call(name, "GET", url)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(name, "GET", url, response)
        check: dict[str, Any] = response.json()
        return check

    def update(self, uuid: str, spec: dict[str, Any]) -> dict[str, Any]:
        url = self.checks + uuid
        response = self._call(spec["name"], "POST", url, spec)
        if response.status_code == 404:
            raise HealthchecksError(
                f"healthchecks check {spec['name']!r} no longer exists: run `pulumi refresh`, then `pulumi up`"
            )
        if response.status_code != 200:
            raise self._fail(spec["name"], "POST", url, response)
        check: dict[str, Any] = response.json()
        return check

    def delete(self, name: str, uuid: str) -> None:
        url = self.checks + uuid
        response = self._call(name, "DELETE", url)
        if response.status_code not in (200, 404):  # 404: already gone, which is what delete wants
            raise self._fail(name, "DELETE", url, response)

    def channel_ids(self, check: str, wanted: str) -> set[str]:
        """The ids of the channels that `wanted` ("*", "" or names and ids, comma-separated) names."""
        if wanted == "":
            return set()
        url = self.base + "channels/"
        response = self._call(check, "GET", url)
        if response.status_code != 200:
            raise self._fail(check, "GET", url, response)
        channels: list[dict[str, str]] = response.json().get("channels", [])
        if wanted == "*":
            return {c["id"] for c in channels}
        names = wanted.split(",")
        return {c["id"] for c in channels if c["id"] in names or c["name"] in names}


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

    def _api(self, state: HeartbeatCheckProps, call: Callable[[HealthchecksApi], T]) -> tuple[HealthchecksApi, T]:
        """Call the check's API with the key in the stack's configuration when one is set (a rotated key), and with
        the key stored in the state when that one is refused or unset (the check moved to another server)."""
        keys = [ApiKey.configured(self.configured_key)] if self.configured_key else []
        if state.api_key != self.configured_key:
            keys.append(ApiKey.stored(state.api_key))
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
            "current read-write key"
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
    """A healthchecks check named `name`, expecting a ping every `timeout` seconds."""

    uuid: pulumi.Output[str]
    pingUrl: pulumi.Output[str]

    @property
    def ping_url(self) -> pulumi.Output[str]:
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
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
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
