"""VultrApi: a typed client for the Vultr API v2, for the dynamic providers that manage Vultr objects.

`api_url` is the API's origin (default https://api.vultr.com), with or without the version root /v2 and a trailing
slash; paths given to the methods are relative to the version root, which the client adds (govultr does the
same: base "https://api.vultr.com", paths "/v2/..."). Errors name the path as it was requested. The API key
travels only in the `Authorization: Bearer` header, never in a URL or an error message.

Answers: 200, 201, 202 and 204 are success (govultr accepts 200..204); every 4xx carries a JSON object whose
`error` attribute explains it (the API reference's "Response Codes"), and errors here quote that text. Lists
are paged with `per_page` and `cursor`; `meta.links.next` is the next page's cursor, "" on the last page.

Retries, with exponential backoff or what Retry-After asks: GET, PUT, PATCH and DELETE on 429 and 5xx; a POST
only on 429 (refused at the door by the rate limiter, so nothing happened) and on connection errors that occur
before the request was sent. A POST answered 5xx, or whose answer was lost, may have created its object, and
is never sent twice by `post`. `create` goes further for the objects the providers make: it first looks for the
object (by a mark unique to the stack and the resource: one a run cut short made and never recorded), and after
a 5xx or a lost answer looks again before it posts again, so that nothing is made twice. (govultr, through
go-retryablehttp, retries every method on 5xx; this client does not.)
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests
from urllib3.util.retry import Retry

from providers.http import json_object, retrying_session
from providers.props import ProviderError
from settings.datastore import VULTR_API_ROOT, vultr_api_origin

API_URL = "https://api.vultr.com"
API_KEY_SETTING = "vultrApiKey"
TIMEOUT = 30.0  # seconds per request
RETRIES = 6
BACKOFF = 0.5  # seconds: retries wait 0, 1, 2, 4, 8, 16 (BACKOFF * 2**n after the first), or what Retry-After asks
CREATE_ATTEMPTS = 4  # POSTs of one create or action: a create looks for what the one before may have made
PER_PAGE = 100  # the API's default page size; its maximum is 500
SUCCESS = (200, 201, 202, 204)
IDEMPOTENT = frozenset({"GET", "PUT", "PATCH", "DELETE"})
UNASSIGNED_IP = "0.0.0.0"  # noqa: S104 (a value, not a bind) main_ip until the address is assigned
READY = (("status", "active"), ("power_status", "running"), ("server_status", "ok"))
HINTS = {
    401: (
        f" (the API key, {API_KEY_SETTING}, is wrong, or this machine's IP address is not in the API key's Access"
        " Control list: add its address or subnet in the Vultr customer portal, Account > API > Access Control)"
    ),
    403: " (the API key's user lacks the permission this call needs)",
    404: " (no such object in this account: deleted, or never created with this key)",
    429: " (more than 30 requests per second from this IP address; retried with backoff and still refused)",
}

Json = dict[str, Any]
Jsons = list[Json]


class Made(NamedTuple):
    """An object `VultrApi.create` made, or found made already (by a run cut short, or a POST whose answer was
    lost)."""

    object: Json
    adopted: bool


class VultrError(ProviderError):
    """A Vultr API call failed; the message names the call and gives the API's own answer, never the key."""

    def __init__(self, message: str, *, status: int | None = None, api_error: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.api_error = api_error

    @property
    def may_have_acted(self) -> bool:
        """The API may have done what was asked: a 5xx (a gateway that timed out after the API acted), or no
        answer at all."""
        return self.status is None or self.status >= 500


class _VultrRetry(Retry):
    """urllib3's Retry, except that a POST is retried on 429 alone (never on 5xx)."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method.upper() == "POST":
            return status_code == 429
        return super().is_retry(method, status_code, has_retry_after)


def _session(api_key: str, retries: int) -> requests.Session:
    # Read errors (an answer lost) are retried only for the idempotent methods; connect errors always.
    session = retrying_session(retries=retries, backoff=BACKOFF, methods=IDEMPOTENT, policy=_VultrRetry)
    session.headers.update(
        {"Authorization": f"Bearer {api_key}", "Accept": "application/json", "User-Agent": "ephemeros"}
    )
    return session


def not_ready(instance: Json) -> list[str]:
    """What an instance still lacks to be usable: each unmet condition, with the value it has now."""
    missing = [f"{key} {want!r} (is {instance.get(key)!r})" for key, want in READY if instance.get(key) != want]
    if instance.get("main_ip") in (None, "", UNASSIGNED_IP):
        missing.append(f"an assigned main_ip (is {instance.get('main_ip')!r})")
    return missing


class VultrApi:
    """The Vultr API v2 calls the providers need, with retries, paging and errors that say what failed."""

    def __init__(
        self, *, api_url: str = API_URL, api_key: str, timeout: float = TIMEOUT, retries: int = RETRIES
    ) -> None:
        self.origin = vultr_api_origin(api_url)
        self.root = self.origin + VULTR_API_ROOT
        self.root_path = urlsplit(self.root).path  # what errors name: /v2, or /<prefix>/v2 behind a proxy
        self.timeout = timeout
        self._key = api_key
        self.session = _session(api_key, retries)

    def __repr__(self) -> str:
        return f"VultrApi(api_url={self.origin!r})"

    def where(self, path: str) -> str:
        """The path as requested, for messages: e.g. /v2/os."""
        return self.root_path + path

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "<api key>") if self._key else text

    def _call(
        self, method: str, path: str, body: Json | None = None, params: dict[str, str | int] | None = None
    ) -> requests.Response:
        try:
            return self.session.request(method, self.root + path, json=body, params=params, timeout=self.timeout)
        except requests.RequestException as error:
            raise VultrError(self._redact(f"Vultr API: {method} {self.where(path)} failed: {error}")) from None

    def _fail(self, method: str, path: str, response: requests.Response) -> VultrError:
        status = response.status_code
        try:
            document = response.json()
        except ValueError:
            document = None
        message = str(document.get("error") or "").strip() if isinstance(document, dict) else ""
        message = self._redact(message or response.text.strip()[:200] or response.reason or "no message")
        return VultrError(
            f"Vultr API: {method} {self.where(path)} answered {status}: {message}{HINTS.get(status, '')}",
            status=status,
            api_error=message,
        )

    def _document(self, method: str, path: str, response: requests.Response) -> Json:
        if not response.content:
            return {}
        document = json_object(response)
        if document is None:
            raise VultrError(
                f"Vultr API: {method} {self.where(path)} answered {response.status_code} with something other"
                f" than a JSON object: {self._redact(response.text.strip()[:200])}",
                status=response.status_code,
            )
        return document

    def _send(self, method: str, path: str, body: Json | None) -> Json:
        response = self._call(method, path, body)
        if response.status_code not in SUCCESS:
            raise self._fail(method, path, response)
        return self._document(method, path, response)

    def get(self, path: str, params: dict[str, str | int] | None = None) -> Json | None:
        """The object at `path`, or None if the API answers 404."""
        response = self._call("GET", path, params=params)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail("GET", path, response)
        return self._document("GET", path, response)

    def list(
        self, path: str, key: str, *, per_page: int | None = None, params: dict[str, str | int] | None = None
    ) -> Jsons:
        """Every item of the list at `path` (the answer's `key` array), following the cursor to the last page."""
        items: Jsons = []
        cursor = ""
        seen: set[str] = set()
        while True:
            query: dict[str, str | int] = {**(params or {}), "per_page": per_page or PER_PAGE}
            if cursor:
                query["cursor"] = cursor
            response = self._call("GET", path, params=query)
            if response.status_code != 200:
                raise self._fail("GET", path, response)
            page = self._document("GET", path, response)
            found = page.get(key)
            if not isinstance(found, list):
                raise VultrError(f"Vultr API: GET {self.where(path)} answered without a {key!r} list")
            items.extend(found)
            cursor = str(((page.get("meta") or {}).get("links") or {}).get("next") or "")
            if not cursor:
                return items
            if cursor in seen:
                raise VultrError(f"Vultr API: GET {self.where(path)} gave the same next cursor twice: {cursor!r}")
            seen.add(cursor)

    def post(self, path: str, body: Json | None = None) -> Json:
        """Create or act; the answer's object, or {} for an answer without a body (204)."""
        return self._send("POST", path, body)

    def act(self, path: str, body: Json) -> Json:
        """POST an action whose repetition does no harm (setting a backup schedule): unlike `post`, retried with
        backoff after a 5xx or a lost answer too."""
        attempt = 0
        while True:
            try:
                return self.post(path, body)
            except VultrError as error:
                attempt += 1
                if not error.may_have_acted or attempt >= CREATE_ATTEMPTS:
                    raise
            time.sleep(BACKOFF * 2**attempt)

    def create(self, path: str, body: Json, key: str, *, find: Callable[[], Json | None]) -> Made:
        """The object that POST `path` makes (the answer's `key`), made once whatever happens on the way: `find`
        looks for it (by its mark) before the first POST, and again after a POST the API may have acted on
        (a 5xx, a lost answer) before posting again with backoff."""
        found = find()
        attempt = 0
        while found is None:
            try:
                return Made(self.post(path, body)[key], adopted=False)
            except VultrError as error:
                attempt += 1
                if not error.may_have_acted or attempt >= CREATE_ATTEMPTS:
                    raise
            time.sleep(BACKOFF * 2**attempt)
            found = find()
        return Made(found, adopted=True)

    def patch(self, path: str, body: Json) -> Json:
        return self._send("PATCH", path, body)

    def put(self, path: str, body: Json) -> Json:
        return self._send("PUT", path, body)

    def delete(self, path: str) -> None:
        """Delete the object at `path`; a 404 means it is already gone, which is what delete wants."""
        response = self._call("DELETE", path)
        if response.status_code not in (*SUCCESS, 404):
            raise self._fail("DELETE", path, response)

    def os_id(self, name: str) -> int:
        """The id of the operating system called `name` (e.g. "Debian 12 x64 (bookworm)"), from GET /v2/os."""
        systems = self.list("/os", "os")
        for system in systems:
            if system.get("name") == name:
                return int(system["id"])
        names = [str(system.get("name")) for system in systems]
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        hint = f"; close matches: {', '.join(map(repr, close))}" if close else f"; it lists {len(names)} others"
        raise VultrError(f"Vultr offers no operating system named {name!r} (GET {self.where('/os')}){hint}")

    def instance(self, instance_id: str) -> Json | None:
        """The instance, or None if it does not exist (any more)."""
        answer = self.get(f"/instances/{instance_id}")
        if answer is None:
            return None
        found: Json = answer["instance"]
        return found

    def wait_for_instance(self, instance_id: str, *, timeout: float, poll: float) -> Json:
        """The instance once it is active, running, installed (server_status ok) and has its main IP."""
        deadline = time.monotonic() + timeout
        while True:
            instance = self.instance(instance_id)
            if instance is None:
                raise VultrError(f"Vultr instance {instance_id} no longer exists (deleted while waiting for it)")
            missing = not_ready(instance)
            if not missing:
                return instance
            left = deadline - time.monotonic()
            if left <= 0:
                raise VultrError(
                    f"Vultr instance {instance_id} is not ready after {timeout:g}s: still waiting for "
                    + ", ".join(missing)
                )
            time.sleep(min(poll, left))
