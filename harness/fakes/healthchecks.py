"""A local Healthchecks server for tests: the Management API v3 and the ping endpoints, on loopback.

It follows the documented API and the upstream implementation's behaviour, as a real Healthchecks server (v3.13)
was seen to answer: X-Api-Key (or `api_key` in a JSON body) of 32 characters, 401 "missing api key" / "wrong api
key"; strict validation of create and update bodies with the same "json validation error: ..." messages (a body
that is not an object: "value is not an object"; booleans count as numbers, so `timeout: true` is "too small");
`unique` upserts answered 200 (found and updated) or 201 (created); 403 with an empty text/html body at the
account's check limit (counted over all of the account's projects) or for another project's check; Django's 404
page for a check that does not exist; channels as "*", "" or a list of ids or names, listed by GET
/api/v3/channels/; check documents with badge_url and the filter_* fields; pings at /ping/<uuid>[/start|/fail|
/log|/<exit code>], whose URLs start with `ping_endpoint` when it is set (a self-hosted Healthchecks's
PING_ENDPOINT setting, for pings that come from another network than the API's clients), else with the server's
own /ping/. Tests can queue faults (429 with Retry-After, 5xx) for the next requests.

Keys (API docs, "Authentication"): the read-only key works only for the checks list and a single check (and flips
and badges, which the fake does not serve); the channels list, the pings and their bodies answer it 401 "wrong api
key", as upstream's `authorize` decorator does for every key but the read-write one.

Pings (API docs, "List check's logged pings" and "Get a ping's logged body"): GET /api/v3/checks/<uuid>/pings/
lists the logged pings newest first, at most the account's ping log limit (100 on the free plan), each with type,
date, n, scheme, remote_addr, method, ua, rid, duration (a success or failure after a start) and body_url (null
without a body); GET /api/v3/checks/<uuid>/pings/<n>/body answers the body as text/plain, 404 when the ping has
none or is past the limit. A check's `last_ping` is the time of its last success or failure ("start" and "log"
leave it), and its `status` is computed when asked, as upstream's Check.get_status(): new, paused, up, grace
(late by less than the grace time) or down; v3 reports a running job in the separate `started` field. `now` can be
moved forward to make a check late.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import deque
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from harness.fakes.serving import serve

MAX_DURATION = 31536000
API = "/api/v3/checks/"
CHANNELS = "/api/v3/channels/"
NOT_FOUND_PAGE = "<!doctype html>\n<html><head><title>Not Found</title></head><body><h1>Not Found</h1></body></html>"
UNIQUE_FIELDS = ("name", "slug", "tags", "timeout", "grace")
STRING_FIELDS = ("name", "slug", "tags", "desc", "channels", "schedule", "tz", "success_kw", "failure_kw", "start_kw")
MAX_LENGTH = {"name": 100, "slug": 100, "schedule": 100}


class Invalid(Exception):
    pass


@dataclass
class Account:
    check_limit: int = 20
    ping_log_limit: int = 100  # the free plan's; 1000 on paid plans


@dataclass
class Project:
    api_key: str
    read_only_key: str
    account: Account = field(default_factory=Account)
    channels: list[dict[str, str]] = field(default_factory=list)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # uuid -> check


def validate(body: Any) -> dict[str, Any]:
    """The subset of upstream's Spec that ephemeros and the tests use; first error wins, upstream's wording."""
    if not isinstance(body, dict):
        raise Invalid("json validation error: value is not an object")
    spec = {k: v for k, v in body.items() if k != "api_key"}
    for key, value in spec.items():
        if key in STRING_FIELDS:
            if not isinstance(value, str):
                raise Invalid(f"json validation error: {key} is not a string")
            if len(value) > MAX_LENGTH.get(key, 10000):
                raise Invalid(f"json validation error: {key} is too long")
            if key == "slug" and not re.fullmatch(r"[a-z0-9-_]*", value):
                raise Invalid("json validation error: slug does not match pattern")
        elif key in ("timeout", "grace"):
            if not isinstance(value, int):  # a bool is an int here, as upstream: True is 1, "too small"
                raise Invalid(f"json validation error: {key} is not a number")
            if value < 60:
                raise Invalid(f"json validation error: {key} is too small")
            if value > MAX_DURATION:
                raise Invalid(f"json validation error: {key} is too large")
        elif key in ("manual_resume", "filter_subject", "filter_body", "filter_http_body", "filter_default_fail"):
            if not isinstance(value, bool):
                raise Invalid(f"json validation error: {key} is not a boolean")
        elif key == "methods":
            if value not in ("", "POST"):
                raise Invalid("json validation error: methods has unexpected value")
        elif key == "unique":
            if not isinstance(value, list):
                raise Invalid("json validation error: unique is not an array")
            if any(item not in UNIQUE_FIELDS for item in value):
                raise Invalid("json validation error: an item in 'unique' has unexpected value")
    return spec


class FakeHealthchecks:
    """The server's state; `url` is its base URL once started with `running()`."""

    def __init__(self) -> None:
        self.projects: list[Project] = []
        self.faults: deque[tuple[int, dict[str, str], str]] = deque()
        self.requests: list[tuple[str, str]] = []  # (method, path), with check UUIDs in paths
        self.pings: list[tuple[str, str, str]] = []  # (uuid, kind, body)
        self.lock = threading.Lock()
        self.url = ""
        self.ping_endpoint = ""  # e.g. "http://10.0.2.2:8000/ping/"; "" for the server's own /ping/
        self.clock: timedelta = timedelta()  # added to the real time: tests move it forward to make checks late

    def now(self) -> datetime:
        return datetime.now(UTC) + self.clock

    def add_project(
        self, channels: tuple[str, ...] = ("Email", "Pager"), check_limit: int = 20, account: Account | None = None
    ) -> Project:
        project = Project(
            api_key=uuid.uuid4().hex,
            read_only_key=uuid.uuid4().hex,
            account=account or Account(check_limit),
            channels=[{"id": str(uuid.uuid4()), "name": name, "kind": "email"} for name in channels],
        )
        self.projects.append(project)
        return project

    def fail_next(self, status: int, times: int = 1, retry_after: int | None = None, error: str = "") -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        body = json.dumps({"error": error}) if error else ""
        for _ in range(times):
            self.faults.append((status, headers, body))

    def checks(self) -> list[dict[str, Any]]:
        return [check for project in self.projects for check in project.checks.values()]

    def check_named(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.checks() if c["name"] == name), None)

    # --- the API's behaviour ---

    def status(self, check: dict[str, Any]) -> str:
        """As upstream's Check.get_status(): new and paused as they are; else down after a failure, or when the
        last success is older than timeout + grace; grace when older than timeout; else up."""
        if check["status"] in ("new", "paused", "down"):
            return str(check["status"])
        late = self.now() - check["_last_ping"]
        if late > timedelta(seconds=check["timeout"] + check["grace"]):
            return "down"
        return "grace" if late > timedelta(seconds=check["timeout"]) else "up"

    def to_dict(self, check: dict[str, Any], readonly: bool = False) -> dict[str, Any]:
        code = check["uuid"]
        result = {k: v for k, v in check.items() if k not in ("uuid", "channel_ids") and not k.startswith("_")}
        result["status"] = self.status(check)
        last = check["_last_ping"]
        result["last_ping"] = last.isoformat(timespec="seconds") if last else None
        result["next_ping"] = (
            (last + timedelta(seconds=check["timeout"])).isoformat(timespec="seconds") if last else None
        )
        result["started"] = check["_last_start"] is not None
        result["channels"] = ",".join(check["channel_ids"])
        if readonly:
            del result["channels"]
            result["unique_key"] = uuid.uuid5(uuid.NAMESPACE_OID, code).hex[:40]
        else:
            result["uuid"] = code
            result["ping_url"] = f"{self.ping_endpoint or self.url + '/ping/'}{code}"
            result["badge_url"] = f"{self.url}/b/2/{uuid.uuid5(uuid.NAMESPACE_URL, code)}.svg"
            result["update_url"] = f"{self.url}{API}{code}"
            result["pause_url"] = f"{self.url}{API}{code}/pause"
            result["resume_url"] = f"{self.url}{API}{code}/resume"
        return result

    def resolve_channels(self, project: Project, spec: str) -> list[str]:
        if spec == "*":
            return [c["id"] for c in project.channels]
        if spec == "":
            return []
        ids = []
        for identifier in spec.split(","):
            if identifier == "":
                raise Invalid("empty channel identifier")
            matches = [c for c in project.channels if identifier in (c["id"], c["name"])]
            if not matches:
                raise Invalid(f"invalid channel identifier: {identifier}")
            if len(matches) > 1:
                raise Invalid(f"non-unique channel identifier: {identifier}")
            ids.append(matches[0]["id"])
        return ids

    def apply(self, project: Project, check: dict[str, Any], spec: dict[str, Any]) -> None:
        channels = self.resolve_channels(project, spec["channels"]) if "channels" in spec else None
        for key in ("name", "slug", "tags", "desc", "timeout", "grace", "methods", "manual_resume"):
            if key in spec:
                check[key] = spec[key]
        if channels is not None:
            check["channel_ids"] = channels

    def create(self, project: Project, spec: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        unique = spec.get("unique") or []
        if unique and all(key in spec for key in unique):
            for check in project.checks.values():
                if all(check.get(key) == spec[key] for key in unique):
                    self.apply(project, check, spec)
                    return 200, check
        account_checks = sum(len(p.checks) for p in self.projects if p.account is project.account)
        if account_checks >= project.account.check_limit:
            return 403, None
        check = {
            "uuid": str(uuid.uuid4()),
            "name": "",
            "slug": "",
            "tags": "",
            "desc": "",
            "grace": 3600,
            "n_pings": 0,
            "status": "new",
            "_last_ping": None,
            "_last_start": None,
            "_pings": [],
            "manual_resume": False,
            "methods": "",
            "subject": "",
            "subject_fail": "",
            "start_kw": "",
            "success_kw": "",
            "failure_kw": "",
            "filter_subject": False,
            "filter_body": False,
            "filter_http_body": False,
            "filter_default_fail": False,
            "timeout": 86400,
            "channel_ids": [],
        }
        self.apply(project, check, spec)
        project.checks[check["uuid"]] = check
        return 201, check


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHealthchecks

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: str = "", headers: dict[str, str] | None = None, kind: str = "json") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", {"json": "application/json", "html": "text/html"}.get(kind, "text/plain"))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, document: Any) -> None:
        self._send(status, json.dumps(document))

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _body(self) -> tuple[Any, bool]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}, True
        try:
            return json.loads(raw), True
        except ValueError:
            return None, False

    def _project(self, body: Any, write: bool) -> Project | None:
        key = self.headers.get("X-Api-Key")
        if key is None and isinstance(body, dict):
            key = str(body.get("api_key", ""))
        if key is None or len(key) != 32:
            self._error(401, "missing api key")
            return None
        for project in self.fake.projects:
            if key == project.api_key or (not write and key == project.read_only_key):
                return project
        self._error(401, "wrong api key")
        return None

    def _handle(self, method: str) -> None:
        fake = self.fake
        with fake.lock:
            fake.requests.append((method, self.path))
            if self.path.startswith("/ping/"):
                self._ping(method)
                return
            if fake.faults:
                status, headers, fault_body = fake.faults.popleft()
                self._send(status, fault_body, headers)
                return
            if not self.path.startswith((API, CHANNELS)):
                self._send(404, NOT_FOUND_PAGE, kind="html")
                return
            body, parsed = self._body() if method == "POST" else ({}, True)
            if not parsed:
                self._error(400, "could not parse request body")
                return
            code, _, rest = self.path[len(API) :].split("?")[0].partition("/")
            # The read-only key reads the checks list and single checks; everything else needs the read-write key.
            project = self._project(body, write=method != "GET" or self.path.startswith(CHANNELS) or rest != "")
            if project is None:
                return
            if self.path.startswith(CHANNELS):
                self._channels(method, project)
            elif code == "":
                self._collection(method, project, body)
            elif rest:
                self._pings(method, project, code, rest)
            else:
                self._single(
                    method, project, code, body, readonly=self.headers.get("X-Api-Key") == project.read_only_key
                )

    def _channels(self, method: str, project: Project) -> None:
        if method != "GET":
            self._send(405)
            return
        self._json(200, {"channels": [dict(c) for c in project.channels]})

    def _collection(self, method: str, project: Project, body: Any) -> None:
        if method == "GET":
            self._json(200, {"checks": [self.fake.to_dict(c) for c in project.checks.values()]})
            return
        if method != "POST":
            self._send(405)
            return
        try:
            spec = validate(body)
            status, check = self.fake.create(project, spec)
        except Invalid as error:
            self._error(400, str(error))
            return
        if check is None:
            self._send(status, kind="html")  # 403 with an empty text/html body, as upstream
            return
        self._json(status, self.fake.to_dict(check))

    def _single(self, method: str, project: Project, code: str, body: Any, readonly: bool) -> None:
        check = next((c for p in self.fake.projects for c in p.checks.values() if c["uuid"] == code), None)
        if check is None:
            self._send(404, NOT_FOUND_PAGE, kind="html")
            return
        if check not in project.checks.values():
            self._send(403, kind="html")
            return
        if method == "GET":
            self._json(200, self.fake.to_dict(check, readonly))
        elif method == "POST":
            try:
                self.fake.apply(project, check, validate(body))
            except Invalid as error:
                self._error(400, str(error))
                return
            self._json(200, self.fake.to_dict(check))
        elif method == "DELETE":
            del project.checks[code]
            self._json(200, self.fake.to_dict(check))
        else:
            self._send(405)

    def _pings(self, method: str, project: Project, code: str, rest: str) -> None:
        check = project.checks.get(code)
        if method != "GET":
            self._send(405)
            return
        if check is None:
            other = any(code in p.checks for p in self.fake.projects)
            self._send(403 if other else 404, "" if other else NOT_FOUND_PAGE, kind="html")
            return
        limit = project.account.ping_log_limit
        kept = check["_pings"][-limit:]
        if rest == "pings/":
            self._json(200, {"pings": [{k: v for k, v in p.items() if k != "_body"} for p in reversed(kept)]})
            return
        found = re.fullmatch(r"pings/(\d+)/body", rest)
        ping = next((p for p in kept if found and p["n"] == int(found.group(1))), None)
        if ping is None or not ping["_body"]:
            self._send(404, NOT_FOUND_PAGE, kind="html")
            return
        self._send(200, ping["_body"], kind="text")

    def _ping(self, method: str) -> None:
        parts = self.path[len("/ping/") :].split("?")[0].split("/")
        code, kind = parts[0], parts[1] if len(parts) > 1 else "success"
        if kind.isdigit() and int(kind) <= 255:  # an exit status: 0 is success, anything else a failure
            kind = "success" if int(kind) == 0 else "fail"
        check = next((c for c in self.fake.checks() if c["uuid"] == code), None)
        if check is None or kind not in ("success", "fail", "start", "log"):
            self._send(404, "not found", kind="text")
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode(errors="replace") if length else ""
        now = self.fake.now()
        check["n_pings"] += 1
        n = check["n_pings"]
        duration = None
        if kind == "start":
            check["_last_start"] = now
        elif kind in ("success", "fail"):
            if check["_last_start"] is not None:
                duration = (now - check["_last_start"]).total_seconds()
            check["_last_start"] = None
            check["_last_ping"] = now
            check["status"] = "up" if kind == "success" else "down"
        ping: dict[str, Any] = {
            "type": kind,
            "date": now.isoformat(),
            "n": n,
            "scheme": "http",
            "remote_addr": self.client_address[0],
            "method": method,
            "ua": self.headers.get("User-Agent", ""),
            "rid": None,
            "body_url": f"{self.fake.url}{API}{code}/pings/{n}/body" if raw else None,
            "_body": raw,
        }
        if duration is not None:
            ping["duration"] = duration
        check["_pings"].append(ping)
        self.fake.pings.append((code, kind, raw))
        self._send(200, "OK", kind="text")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_HEAD(self) -> None:
        self._handle("HEAD")


def running(fake: FakeHealthchecks, host: str = "127.0.0.1") -> AbstractContextManager[FakeHealthchecks]:
    """Serve `fake` on a free port of `host` (loopback by default) for the duration of the block; `fake.url` is its
    base URL."""
    return serve(fake, _Handler, host)
