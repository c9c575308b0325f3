"""HealthchecksApi: a typed client for the healthchecks Management API v3 (healthchecks.io or a self-hosted
Healthchecks), for the HeartbeatCheck provider, the pre-flight check of the key and `make status`.

The key travels only in the `X-Api-Key` header. A check's UUID is its ping secret, so no error quotes a URL that
holds one. 429 and 5xx answers are retried with backoff (honouring Retry-After), POST too: creates are upserts on
the check's name, so repeating one is safe. Errors carry the API's own message and say which key was refused.

The read-only key works only for the checks list, a single check, its status changes and badges (API docs,
"Authentication"); the channels list, the pings and their bodies need the read-write key and answer it 401.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import requests

from providers.http import json_object, retrying_session
from providers.props import ProviderError

API_PATH = "/api/v3/"
API_KEY_SETTING = "healthchecksApiKey"
TIMEOUT = 30  # seconds per request
RETRIES = 6
BACKOFF = 0.5  # seconds: retries wait 0, 1, 2, 4, 8, 16 (BACKOFF * 2**n after the first), or what Retry-After asks

Json = dict[str, Any]


class HealthchecksError(ProviderError):
    """An API call failed; the message names what it was about and gives the API's answer. `status` is the HTTP
    status it answered, None when it did not answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KeyRefused(HealthchecksError):
    """The API answered 401 to the key used."""


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

    @classmethod
    def configured_and_stored(cls, value: str) -> ApiKey:
        """The configuration's key, which is also the one stored in the state: an error names both, as either may
        be the stale one (`pulumi refresh` and `destroy` without --run-program see the configuration of the last
        `pulumi up`)."""
        return cls(
            value,
            f"the API key in the stack's configuration ({API_KEY_SETTING}), the same as the one stored in the state "
            "(refresh and destroy use a newly set key only with --run-program, as make refresh and make destroy do)",
        )


class HealthchecksApi:
    """The Management API v3 calls ephemeros makes."""

    def __init__(self, api_url: str, key: ApiKey, retries: int = RETRIES, backoff: float | None = None) -> None:
        self.base = api_url.rstrip("/") + API_PATH
        self.checks_url = self.base + "checks/"
        self.key = key
        self.headers = {"X-Api-Key": key.value, "User-Agent": "ephemeros"}
        self.session = retrying_session(retries=retries, backoff=BACKOFF if backoff is None else backoff, methods=None)

    def _where(self, url: str) -> str:
        """The URL without a check's UUID, which is a secret."""
        return self.checks_url if url.startswith(self.checks_url) else url

    def _call(self, subject: str, method: str, url: str, body: Json | None = None) -> requests.Response:
        try:
            return self.session.request(method, url, json=body, headers=self.headers, timeout=TIMEOUT)
        except requests.RequestException as error:
            # The exception's text quotes the URL, and a check's URL holds its UUID, which is a secret.
            uuid = url.removeprefix(self.checks_url).split("/")[0] if url.startswith(self.checks_url) else ""
            reason = str(error).replace(uuid, "<check>") if uuid else str(error)
            raise HealthchecksError(f"healthchecks {subject}: {method} {self._where(url)} failed: {reason}") from None

    def _document(self, subject: str, method: str, url: str, response: requests.Response) -> Json:
        """The answer's JSON object; anything else (a web page, where the API should be) is an error saying so."""
        document = json_object(response)
        if document is None:
            raise HealthchecksError(
                f"healthchecks {subject}: {method} {self._where(url)} answered {response.status_code} with no JSON "
                "object (a web page, not the API?)",
                response.status_code,
            )
        return document

    def _fail(self, subject: str, method: str, url: str, response: requests.Response) -> HealthchecksError:
        try:
            answer = response.json()
            message = (answer.get("error") if isinstance(answer, dict) else None) or response.text
        except ValueError:
            message = response.text.strip()[:200] or response.reason
        hint = {
            401: f" ({self.key.origin} is missing or wrong: use the project's read-write API key)",
            403: " (the account's check limit is reached, or the check belongs to another project than "
            f"{self.key.origin})",
        }.get(response.status_code, "")
        error = KeyRefused if response.status_code == 401 else HealthchecksError
        return error(
            f"healthchecks {subject}: {method} {self._where(url)} answered {response.status_code}: {message}{hint}",
            response.status_code,
        )

    def _json(
        self, subject: str, method: str, url: str, body: Json | None = None, ok: tuple[int, ...] = (200,)
    ) -> Json:
        response = self._call(subject, method, url, body)
        if response.status_code not in ok:
            raise self._fail(subject, method, url, response)
        return self._document(subject, method, url, response)

    # --- checks ---

    def upsert(self, spec: Json) -> Json:
        """Create the check named spec["name"], or update the one that has that name."""
        return self._json(f"check {spec['name']!r}", "POST", self.checks_url, {**spec, "unique": ["name"]}, (200, 201))

    def get(self, name: str, uuid: str) -> Json | None:
        url = self.checks_url + uuid
        response = self._call(f"check {name!r}", "GET", url)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(f"check {name!r}", "GET", url, response)
        return self._document(f"check {name!r}", "GET", url, response)

    def update(self, uuid: str, spec: Json) -> Json:
        url = self.checks_url + uuid
        subject = f"check {spec['name']!r}"
        response = self._call(subject, "POST", url, spec)
        if response.status_code == 404:
            raise HealthchecksError(
                f"healthchecks check {spec['name']!r} no longer exists: run `pulumi refresh`, then `pulumi up`"
            )
        if response.status_code != 200:
            raise self._fail(subject, "POST", url, response)
        return self._document(subject, "POST", url, response)

    def delete(self, name: str, uuid: str) -> None:
        url = self.checks_url + uuid
        response = self._call(f"check {name!r}", "DELETE", url)
        if response.status_code not in (200, 404):  # 404: already gone, which is what delete wants
            raise self._fail(f"check {name!r}", "DELETE", url, response)

    def checks(self) -> list[Json]:
        """Every check of the key's project (with the read-write key: with its UUID and ping URL)."""
        checks: list[Json] = self._json("checks list", "GET", self.checks_url).get("checks", [])
        return checks

    # --- channels ---

    def channels(self, subject: str = "channels list") -> list[Json]:
        """The project's notification channels (integrations): id, name, kind."""
        channels: list[Json] = self._json(subject, "GET", self.base + "channels/").get("channels", [])
        return channels

    def channel_ids(self, check: str, wanted: str) -> set[str]:
        """The ids of the channels that `wanted` ("*", "" or names and ids, comma-separated) names."""
        if wanted == "":
            return set()
        channels = self.channels(f"check {check!r}")
        if wanted == "*":
            return {c["id"] for c in channels}
        names = wanted.split(",")
        return {c["id"] for c in channels if c["id"] in names or c["name"] in names}

    # --- pings ---

    def pings(self, name: str, uuid: str) -> list[Json]:
        """The check's logged pings, newest first (type, date, n, ..., body_url)."""
        pings: list[Json] = self._json(f"check {name!r}", "GET", f"{self.checks_url}{uuid}/pings/").get("pings", [])
        return pings

    def ping_body(self, name: str, uuid: str, n: int) -> str | None:
        """Ping number `n`'s body, or None when it has none (or is no longer kept)."""
        url = f"{self.checks_url}{uuid}/pings/{n}/body"
        response = self._call(f"check {name!r}", "GET", url)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(f"check {name!r}", "GET", url, response)
        return response.text
