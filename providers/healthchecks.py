"""HeartbeatCheck: a check at healthchecks.io (or a self-hosted Healthchecks), through its Management API v3.

Create asks the API for an upsert on the check's name (`unique`), so a retried create never duplicates a check.
A changed period, grace, tags or channels updates the check in place; a new name replaces it. `pulumi refresh`
reads the check back and notices one deleted or edited by hand; destroy deletes it. 429 and 5xx answers are
retried with backoff (honouring Retry-After). Every error names the check and carries the API's own message.

The check's UUID is its ping secret (the ping URL is built from it), so the resource's id is the check's name
and the UUID and ping URL are secret outputs. The API key is a secret input and output (delete and
refresh need it), sent only in the X-Api-Key header.
"""

from __future__ import annotations

from typing import Any

import pulumi
import requests
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

API_PATH = "/api/v3/checks/"
TIMEOUT = 30  # seconds per request
RETRIES = 6
BACKOFF = 0.5  # seconds, doubled at each retry: 0.5, 1, 2, 4, 8, 16 (or what Retry-After asks)
# Fields sent to the API, by input name -> API field name.
FIELDS = {
    "name": "name",
    "slug": "slug",
    "desc": "desc",
    "timeout": "timeout",
    "grace": "grace",
    "channels": "channels",
}
REPLACE_ON = ("apiUrl", "name")
UPDATE_ON = ("apiKey", "slug", "desc", "tags", "timeout", "grace", "channels")


class HealthchecksError(RuntimeError):
    """An API call about a check failed; the message names the check and gives the API's answer."""


def _session() -> requests.Session:
    retry = Retry(
        total=RETRIES,
        backoff_factor=BACKOFF,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,  # POST too: creates are upserts on the name, so repeating one is safe
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


class HealthchecksApi:
    """The few Management API v3 calls a check's life needs."""

    def __init__(self, api_url: str, api_key: str) -> None:
        self.base = api_url.rstrip("/") + API_PATH
        self.headers = {"X-Api-Key": api_key, "User-Agent": "ephemeros"}
        self.session = _session()

    def _call(self, check: str, method: str, url: str, body: dict[str, Any] | None = None) -> requests.Response:
        try:
            response = self.session.request(method, url, json=body, headers=self.headers, timeout=TIMEOUT)
        except requests.RequestException as error:
            # The exception's text quotes the URL, and a check's URL holds its UUID, which is a secret.
            reason = str(error).replace(url[len(self.base) :], "<check>") if url != self.base else str(error)
            raise HealthchecksError(
                f"healthchecks check {check!r}: {method} {self._where(url)} failed: {reason}"
            ) from None
        return response

    def _where(self, url: str) -> str:
        """The URL without a check's UUID, which is a secret."""
        return self.base if url.startswith(self.base) else url

    def _fail(self, check: str, method: str, url: str, response: requests.Response) -> HealthchecksError:
        try:
            message = response.json().get("error") or response.text
        except ValueError:
            message = response.text.strip()[:200] or response.reason
        hint = {
            401: " (the healthchecksApiKey is missing or wrong: use the project's read-write API key)",
            403: " (the project's check limit is reached, or the key belongs to another project)",
        }.get(response.status_code, "")
        status = response.status_code
        return HealthchecksError(
            f"healthchecks check {check!r}: {method} {self._where(url)} answered {status}: {message}{hint}"
        )

    def upsert(self, spec: dict[str, Any]) -> dict[str, Any]:
        body = {**spec, "unique": ["name"]}
        response = self._call(spec["name"], "POST", self.base, body)
        if response.status_code not in (200, 201):
            raise self._fail(spec["name"], "POST", self.base, response)
        check: dict[str, Any] = response.json()
        return check

    def get(self, name: str, uuid: str) -> dict[str, Any] | None:
        url = self.base + uuid
        response = self._call(name, "GET", url)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(name, "GET", url, response)
        check: dict[str, Any] = response.json()
        return check

    def update(self, uuid: str, spec: dict[str, Any]) -> dict[str, Any]:
        url = self.base + uuid
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
        url = self.base + uuid
        response = self._call(name, "DELETE", url)
        if response.status_code not in (200, 404):  # 404: already gone, which is what delete wants
            raise self._fail(name, "DELETE", url, response)


def api_spec(props: dict[str, Any]) -> dict[str, Any]:
    spec = {field: props[key] for key, field in FIELDS.items()}
    spec["tags"] = " ".join(props["tags"])
    # Pulumi hands numbers over as floats; the API wants integers and refuses 300.0 ("timeout is not a number").
    spec["timeout"], spec["grace"] = int(props["timeout"]), int(props["grace"])
    return spec


def state(props: dict[str, Any], check: dict[str, Any]) -> dict[str, Any]:
    """What Pulumi keeps: the inputs as the API now has them, and the (secret) key, UUID and ping URL.

    Delete and refresh get only this state, so it holds the API key too.
    """
    return {
        "apiUrl": props["apiUrl"],
        "apiKey": props["apiKey"],
        "name": check["name"],
        "slug": check.get("slug", props["slug"]),
        "desc": check.get("desc", props["desc"]),
        "tags": check["tags"].split(),
        "timeout": check.get("timeout"),
        "grace": check["grace"],
        # The API answers with the channels' ids; keep what was asked for ("*" or names) to compare with.
        "channels": props["channels"],
        "uuid": check["uuid"],
        "pingUrl": check["ping_url"],
    }


class HeartbeatCheckProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        check = HealthchecksApi(props["apiUrl"], props["apiKey"]).upsert(api_spec(props))
        return CreateResult(id_=props["name"], outs=state(props, check))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [key for key in REPLACE_ON if olds.get(key) != news.get(key)]
        updates = [key for key in UPDATE_ON if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(replaces or updates), replaces=replaces, delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        check = HealthchecksApi(news["apiUrl"], news["apiKey"]).update(olds["uuid"], api_spec(news))
        return UpdateResult(outs=state(news, check))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        check = HealthchecksApi(props["apiUrl"], props["apiKey"]).get(props["name"], props["uuid"])
        if check is None:
            return ReadResult(id_=None, outs={})
        return ReadResult(id_=id_, outs=state(props, check))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        HealthchecksApi(props["apiUrl"], props["apiKey"]).delete(props["name"], props["uuid"])


class HeartbeatCheck(Resource, module="ephemeros", name="HeartbeatCheck"):
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
        tags: list[str],
        timeout: int,
        grace: int,
        channels: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            HeartbeatCheckProvider(),
            resource_name,
            {
                "apiUrl": api_url,
                "apiKey": pulumi.Output.secret(api_key),
                "name": name,
                "slug": slug,
                "desc": desc,
                "tags": tags,
                "timeout": timeout,
                "grace": grace,
                "channels": channels,
                "uuid": None,
                "pingUrl": None,
            },
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["apiKey", "uuid", "pingUrl"])
            ),
        )
