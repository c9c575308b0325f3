"""A local Vultr API v2 server for tests: what a k3s datastore VM needs, on loopback, faithful to the docs.

Its base URL (`fake.url`, set by `running()`) is the API's origin, like https://api.vultr.com: every route is
under /v2, and `VultrApi(api_url=fake.url, ...)` talks to it as to the real API.

Sources, cited by their tag next to each behaviour below:
  [spec]    The API reference's OpenAPI document (https://www.vultr.com/api/), as vendored in vultr/vultr-java
            api/openapi.yaml: "Rate Limit" (more than 30 requests per second from one IP address may get 429),
            "Response Codes" (4xx answers are a JSON object with an `error` attribute), "Meta and Pagination"
            (per_page, default 100 and max 500; cursor; meta.total and meta.links.next/prev), the API Key
            security scheme (Authorization: Bearer), and each operation's status codes and example bodies.
  [models]  The same spec's request models, rendered in vultr/vultr-java docs/CreateInstanceRequest.md,
            UpdateInstanceRequest.md, CreateInstanceBackupScheduleRequest.md, CreateReservedIpRequest.md and
            PostFirewallsFirewallGroupIdRulesRequest.md.
  [govultr] vultr/govultr: govultr.go (base https://api.vultr.com, paths /v2/..., 200..204 are success, an error
            is the answer's body), instance.go (Instance fields; create and update request fields), meta.go,
            listOptions.go, reserved_ip.go, firewall_rule.go (v2: integer rule ids, no update), ssh_key.go, os.go.
  [tf]      vultr/terraform-provider-vultr vultr/resource_vultr_instance.go (creation waits for status "active"
            then power_status "running"; a read whose error contains "invalid instance ID" means the instance is
            gone; a create failing with "Floating IPv4 address is already attached to another server" is
            retried), resource_vultr_firewall_rule.go (every field forces a new rule: rules cannot be updated),
            resource_vultr_firewall_group.go (a missing group's error contains "status":404).
  [tf#440]  terraform-provider-vultr issue 440: an instance reports status "active" while its server_status is
            still "installingbooting"; "ok" comes later.
  [tf#377]  terraform-provider-vultr issue 377: {"error":"Invalid plan chosen.","status":400}.
  [csi#97]  vultr/vultr-csi issue 97: a key used from an address outside its access control list gets
            {"error":"Unauthorized IP address: 207.246.105.116","status":401}.
  [acl]     docs.vultr.com, "How to Manage Vultr API Access Control for Users": an allowlist of IP addresses and
            subnets may use the API for a user; the defaults Any IPv4 (0.0.0.0/0) and Any IPv6 allow everything.
  [ops]     nanovms/ops pull request 1191: a create without a region got {"error":"Bad request.","status":400}.
  [node]    vultr/vultr-node issue 449: creating a firewall rule that already exists is an error.
  [squat]   squat/terraform-provider-vultr issue 59: an instance cannot move to a smaller plan.
  [os]      The ids of /v2/os entries as public code that calls the API uses them: 2136 "Debian 12 x64
            (bookworm)", 477 "Debian 11 x64 (bullseye)", 2284 "Ubuntu 24.04 LTS x64", 1743 "Ubuntu 22.04 LTS
            x64", with arch and family as in the spec's example ({"id": 127, "name": "CentOS 6 x64", "arch":
            "x64", "family": "centos"}).
Where no source gave the real wording, the fake says so with "(chosen)": the body shape and status still follow
[spec]. One deliberate strictness: a body field the API does not document is refused with 400, so that a typo
in a provider fails its tests (how the real API treats unknown fields is not documented).

Tests can queue faults (`fail_next`), optionally only for one method and path, and optionally after the request
took effect (a lost answer); read the request log (`requests`); change the rate limit, how fast instances boot,
retire an operating system (`retire_os`), and act by hand on the state (`instance()`, `remove_instance()`,
`firewall_rule()`, ...).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import secrets
import string
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from harness.fakes.serving import serve

Json = dict[str, Any]

# [os] A selection of the real list, so that paging through it takes several pages.
OPERATING_SYSTEMS: list[Json] = [
    {"id": os_id, "name": name, "arch": "x64", "family": family}
    for os_id, name, family in (
        (159, "Custom", "iso"),
        (164, "Snapshot", "snapshot"),
        (180, "Backup", "backup"),
        (186, "Application", "application"),
        (352, "Debian 10 x64 (buster)", "debian"),
        (371, "Windows 2019 Standard x64", "windows"),
        (387, "Ubuntu 20.04 LTS x64", "ubuntu"),
        (391, "Fedora CoreOS Stable", "fedora-coreos"),
        (401, "CentOS 8 Stream x64", "centos"),
        (447, "FreeBSD 13 x64", "freebsd"),
        (448, "Rocky Linux x64", "rockylinux"),
        (452, "AlmaLinux x64", "almalinux"),
        (477, "Debian 11 x64 (bullseye)", "debian"),
        (501, "Windows 2022 Standard x64", "windows"),
        (535, "Arch Linux x64", "archlinux"),
        (542, "CentOS 9 Stream x64", "centos"),
        (1743, "Ubuntu 22.04 LTS x64", "ubuntu"),
        (1868, "AlmaLinux 9 x64", "almalinux"),
        (1869, "Rocky Linux 9 x64", "rockylinux"),
        (2075, "Flatcar Container Linux LTS x64", "flatcar"),
        (2076, "Alpine Linux x64", "alpinelinux"),
        (2077, "Flatcar Container Linux Stable x64", "flatcar"),
        (2136, "Debian 12 x64 (bookworm)", "debian"),
        (2157, "openSUSE Leap 15 x64", "opensuse"),
        (2180, "Fedora 39 x64", "fedora"),
        (2187, "OpenBSD 7.4 x64", "openbsd"),
        (2212, "FreeBSD 14 x64", "freebsd"),
        (2283, "Fedora 40 x64", "fedora"),
        (2284, "Ubuntu 24.04 LTS x64", "ubuntu"),
        (2286, "OpenBSD 7.5 x64", "openbsd"),
    )
]
REGIONS: list[Json] = [
    {"id": region, "city": city, "country": country, "continent": continent, "options": ["ddos_protection"]}
    for region, city, country, continent in (
        ("ams", "Amsterdam", "NL", "Europe"),
        ("atl", "Atlanta", "US", "North America"),
        ("ewr", "New Jersey", "US", "North America"),
        ("fra", "Frankfurt", "DE", "Europe"),
        ("lax", "Los Angeles", "US", "North America"),
        ("lhr", "London", "GB", "Europe"),
        ("nrt", "Tokyo", "JP", "Asia"),
        ("ord", "Chicago", "US", "North America"),
        ("sea", "Seattle", "US", "North America"),
        ("sgp", "Singapore", "SG", "Asia"),
    )
]
_EVERYWHERE = [region["id"] for region in REGIONS]
# [spec] plan objects (id, vcpu_count, ram in MB, disk in GB, disk_count, bandwidth in GB, monthly_cost, type,
# locations); the vc2 sizes as Vultr sells them. vhf-1c-1gb is offered in one region only.
PLANS: list[Json] = [
    {
        "id": plan,
        "vcpu_count": vcpus,
        "ram": ram,
        "disk": disk,
        "disk_count": 1,
        "bandwidth": bandwidth,
        "monthly_cost": cost,
        "type": plan.split("-")[0],
        "locations": locations,
    }
    for plan, vcpus, ram, disk, bandwidth, cost, locations in (
        ("vc2-1c-1gb", 1, 1024, 25, 1024, 5, _EVERYWHERE),
        ("vc2-1c-2gb", 1, 2048, 55, 2048, 10, _EVERYWHERE),
        ("vc2-2c-4gb", 2, 4096, 80, 3072, 20, _EVERYWHERE),
        ("vc2-4c-8gb", 4, 8192, 160, 4096, 40, _EVERYWHERE),
        ("vhf-1c-1gb", 1, 1024, 32, 1024, 6, ["ewr"]),
    )
]
# fmt: off
# [models] + [govultr] InstanceCreateReq: the fields a create may carry.
CREATE_FIELDS = frozenset(
    {
        "region", "plan", "os_id", "iso_id", "snapshot_id", "app_id", "image_id", "ipxe_chain_url", "script_id",
        "enable_ipv6", "disable_public_ipv4", "attach_private_network", "attach_vpc", "attach_vpc2", "label",
        "sshkey_id", "backups", "user_data", "ddos_protection", "activation_email", "hostname", "tag", "tags",
        "firewall_group_id", "reserved_ipv4", "enable_private_network", "enable_vpc", "enable_vpc2", "vpc_only",
        "user_scheme", "app_variables",
    }
)
# [models] UpdateInstanceRequest.
UPDATE_FIELDS = frozenset(
    {
        "app_id", "image_id", "backups", "firewall_group_id", "enable_ipv6", "os_id", "user_data", "tag", "plan",
        "ddos_protection", "attach_private_network", "attach_vpc", "attach_vpc2", "detach_private_network",
        "detach_vpc", "detach_vpc2", "enable_private_network", "enable_vpc", "enable_vpc2", "label", "tags",
        "user_scheme",
    }
)
# fmt: on
RULE_FIELDS = frozenset({"ip_type", "protocol", "subnet", "subnet_size", "port", "source", "notes"})
PROTOCOLS = ("icmp", "tcp", "udp", "gre", "esp", "ah")  # [models]; [tf] wants them lowercase
BACKUP_TYPES = ("daily", "weekly", "monthly", "daily_alt_even", "daily_alt_odd")  # [models]
MAX_RULES = 50  # [spec] firewall_group.max_rule_count in every example
BAD_REQUEST = "Bad request."  # [ops]
UNKNOWN_KEY = "You did not supply valid authentication credentials."  # [spec] the 401 row of "Response Codes"
RATE_LIMITED = "Rate limit exceeded: more than 30 requests per second."  # (chosen)
GONE_INSTANCE = "invalid instance ID"  # [tf]
ATTACHED_ELSEWHERE = "Floating IPv4 address is already attached to another server"  # [tf]
UNASSIGNED = "0.0.0.0"  # noqa: S104 (a value, not a bind) [spec] main_ip and gateway_v4 in the create answer
INSTANCE_NETWORK = ipaddress.ip_network("198.18.0.0/15")  # benchmarking range (RFC 2544): never routed
RESERVED_NETWORK = ipaddress.ip_network("203.0.113.0/24")  # documentation range (RFC 5737)


class ApiError(Exception):
    """An answer `{"error": message, "status": status}` ([spec] "Response Codes")."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RequestRecord(NamedTuple):
    method: str
    path: str  # without the query string
    query: dict[str, str]
    body: Any  # the parsed JSON body, the raw text if it was not JSON, or None


@dataclass
class Fault:
    status: int
    headers: dict[str, str]
    body: str
    method: str | None
    path: str | None
    processed: bool  # the request takes effect first; only its answer is replaced


@dataclass
class Account:
    """A Vultr account: its API key, the key's access control list [acl], and its objects."""

    api_key: str
    allowed_subnets: list[str] = field(default_factory=lambda: ["0.0.0.0/0", "::/0"])  # [acl] the defaults
    instances: dict[str, Instance] = field(default_factory=dict)
    reserved_ips: dict[str, Json] = field(default_factory=dict)
    firewall_groups: dict[str, FirewallGroup] = field(default_factory=dict)
    ssh_keys: dict[str, Json] = field(default_factory=dict)

    def allows(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in ipaddress.ip_network(subnet) for subnet in self.allowed_subnets)


@dataclass
class Instance:
    """An instance: `fields` is what GET answers; the rest is the fake's own bookkeeping."""

    fields: Json
    address: str  # the main IP it gets once assigned
    user_data: str = ""
    reads: int = 0
    started: float = field(default_factory=time.monotonic)
    stage: int = 0  # 0: pending; 1: active, IP assigned, installingbooting; 2: ok
    held: bool = False  # booting no longer advances on its own
    backup_schedule: Json = field(default_factory=dict)


@dataclass
class FirewallGroup:
    fields: Json
    rules: dict[int, Json] = field(default_factory=dict)
    next_rule: int = 1


@dataclass
class Call:
    """One routed request, as the route handlers see it."""

    account: Account | None
    args: tuple[str, ...]
    query: dict[str, str]
    body: Any

    @property
    def owner(self) -> Account:
        if self.account is None:
            raise ApiError(401, UNKNOWN_KEY)
        return self.account


Answer = tuple[int, Json | None]
Handler = Callable[[Call], Answer]


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()  # [spec] 2020-10-10T01:56:20+00:00


def _object(body: Any, allowed: frozenset[str]) -> Json:
    if not isinstance(body, dict):
        raise ApiError(400, BAD_REQUEST)
    for key in body:
        if key not in allowed:
            raise ApiError(400, f"Unknown field: {key}")  # (chosen) see the module docstring
    return body


def _base64(text: Any, name: str) -> str:
    """[models] user_data is base64; it is kept as given and answered back as given."""
    if not isinstance(text, str):
        raise ApiError(400, f"Invalid {name}: not a base64 string")  # (chosen)
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"Invalid {name}: not valid base64") from None  # (chosen)
    return text


def _cursor(offset: int) -> str:
    """[spec] cursors are "encoded alphanumeric strings"."""
    return base64.b32encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str) -> int:
    try:
        text = base64.b32decode(cursor + "=" * (-len(cursor) % 8)).decode()
        kind, _, number = text.partition(":")
        if kind != "offset":
            raise ValueError(cursor)
        return int(number)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ApiError(400, "Invalid cursor.") from None  # (chosen)


def _page(key: str, items: list[Json], query: dict[str, str]) -> Answer:
    """[spec] Meta and Pagination: per_page (default 100, max 500), cursor, meta.total, meta.links."""
    try:
        per_page = min(max(int(query.get("per_page", "100")), 1), 500)
    except ValueError:
        raise ApiError(400, BAD_REQUEST) from None
    start = _offset(query["cursor"]) if query.get("cursor") else 0
    end = start + per_page
    links = {
        "next": _cursor(end) if end < len(items) else "",
        "prev": _cursor(max(start - per_page, 0)) if start else "",
    }
    return 200, {key: items[start:end], "meta": {"total": len(items), "links": links}}


class FakeVultr:
    """The server's state and behaviour; `url` is its base URL once started with `running()`."""

    def __init__(self) -> None:
        self.url = ""
        self.lock = threading.RLock()
        self.accounts: list[Account] = []
        self.requests: list[RequestRecord] = []
        self.faults: deque[Fault] = deque()
        self.rate_limit: int | None = 30  # [spec] requests per second from one IP address; None: no limit
        self.rate_limited = 0  # how many requests the rate limit refused
        self.boot_reads = 2  # GETs of an instance until it is ready (IP assigned halfway)...
        self.boot_seconds: float | None = None  # ...or, when set, seconds since its creation instead
        self.retired_os: set[str] = set()  # names of operating systems no longer offered
        self._recent: dict[str, deque[float]] = {}
        self._instance_addresses = INSTANCE_NETWORK.hosts()
        self._reserved_addresses = RESERVED_NETWORK.hosts()
        self._v6_networks = 0
        table: list[tuple[str, bool, dict[str, Handler]]] = [
            # [spec] list-os, list-regions and list-plans need no key ("security: []").
            (r"/v2/os", True, {"GET": lambda call: _page("os", self.operating_systems(), call.query)}),
            (r"/v2/regions", True, {"GET": lambda call: _page("regions", REGIONS, call.query)}),
            (r"/v2/plans", True, {"GET": lambda call: _page("plans", PLANS, call.query)}),
            (r"/v2/account", False, {"GET": self._get_account}),
            (r"/v2/instances", False, {"GET": self._list_instances, "POST": self._create_instance}),
            (
                r"/v2/instances/([^/]+)",
                False,
                {"GET": self._get_instance, "PATCH": self._update_instance, "DELETE": self._delete_instance},
            ),
            (r"/v2/instances/([^/]+)/user-data", False, {"GET": self._user_data}),
            (
                r"/v2/instances/([^/]+)/backup-schedule",
                False,
                {"GET": self._get_backup_schedule, "POST": self._set_backup_schedule},
            ),
            (r"/v2/reserved-ips", False, {"GET": self._list_reserved_ips, "POST": self._create_reserved_ip}),
            (
                r"/v2/reserved-ips/([^/]+)",
                False,
                {
                    "GET": self._get_reserved_ip,
                    "PATCH": self._label_reserved_ip,
                    "DELETE": self._delete_reserved_ip,
                },
            ),
            (r"/v2/reserved-ips/([^/]+)/attach", False, {"POST": self._attach_reserved_ip}),
            (r"/v2/reserved-ips/([^/]+)/detach", False, {"POST": self._detach_reserved_ip}),
            (r"/v2/firewalls", False, {"GET": self._list_firewall_groups, "POST": self._create_firewall_group}),
            (
                r"/v2/firewalls/([^/]+)",
                False,
                {
                    "GET": self._get_firewall_group,
                    "PUT": self._describe_firewall_group,
                    "DELETE": self._delete_firewall_group,
                },
            ),
            (r"/v2/firewalls/([^/]+)/rules", False, {"GET": self._list_rules, "POST": self._create_rule}),
            # [spec] [govultr] [tf]: get and delete only; a rule cannot be updated.
            (r"/v2/firewalls/([^/]+)/rules/([^/]+)", False, {"GET": self._get_rule, "DELETE": self._delete_rule}),
            (r"/v2/ssh-keys", False, {"GET": self._list_ssh_keys, "POST": self._create_ssh_key}),
            (
                r"/v2/ssh-keys/([^/]+)",
                False,
                {"GET": self._get_ssh_key, "PATCH": self._update_ssh_key, "DELETE": self._delete_ssh_key},
            ),
        ]
        self.routes = [(re.compile(pattern), public, handlers) for pattern, public, handlers in table]

    # --- set-up and faults -------------------------------------------------------------------------------------

    def assign_reserved_ipv4(self, *addresses: str) -> None:
        """Hand out these addresses, in order, to the next reserved IPv4s (a test that must reach one)."""
        with self.lock:
            self._reserved_addresses = iter([ipaddress.IPv4Address(a) for a in addresses])

    def retire_os(self, name: str, retired: bool = True) -> None:
        """Offer the operating system called `name` no more (or again): it leaves GET /v2/os and cannot be deployed,
        while the instances made from it run on and keep it as their `os` (chosen: how the API shows a retired
        image is not documented; a VM keeps what it was installed with)."""
        with self.lock:
            if retired:
                self.retired_os.add(name)
            else:
                self.retired_os.discard(name)

    def operating_systems(self) -> list[Json]:
        """[os] the operating systems offered now."""
        with self.lock:
            return [system for system in OPERATING_SYSTEMS if system["name"] not in self.retired_os]

    def add_account(self) -> Account:
        account = Account(api_key=secrets.token_hex(18).upper())
        with self.lock:
            self.accounts.append(account)
        return account

    def fail_next(
        self,
        status: int,
        times: int = 1,
        retry_after: int | None = None,
        error: str = "",
        *,
        method: str | None = None,
        path: str | None = None,
        processed: bool = False,
    ) -> None:
        """Answer the next `times` matching requests with `status` (and Retry-After, if given).

        `processed`: the request takes effect before its answer is replaced, as when a gateway times out after the
        API acted: the case where repeating a create would make a second object.
        """
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        body = json.dumps({"error": error or f"Fault injected by the test ({status})", "status": status})
        with self.lock:
            for _ in range(times):
                self.faults.append(Fault(status, headers, body, method, path, processed))

    def requests_to(self, method: str, path: str) -> list[RequestRecord]:
        with self.lock:
            return [record for record in self.requests if (record.method, record.path) == (method, path)]

    # --- acting by hand -----------------------------------------------------------------------------------------

    def _find_instance(self, instance_id: str) -> tuple[Account, Instance]:
        for account in self.accounts:
            if instance_id in account.instances:
                return account, account.instances[instance_id]
        raise KeyError(instance_id)

    def instance(self, instance_id: str) -> Json:
        """The instance's live fields: a test may change them, as if it happened at Vultr."""
        with self.lock:
            return self._find_instance(instance_id)[1].fields

    def instances(self) -> list[Json]:
        with self.lock:
            return [instance.fields for account in self.accounts for instance in account.instances.values()]

    def remove_instance(self, instance_id: str) -> None:
        """Delete an instance out of band (in the customer portal, say)."""
        with self.lock:
            account, _ = self._find_instance(instance_id)
            self._drop_instance(account, instance_id)

    def hold_boot(self, instance_id: str) -> None:
        """Keep the instance where it is in its boot (for tests of waiting that times out)."""
        with self.lock:
            self._find_instance(instance_id)[1].held = True

    def firewall_rule(self, group_id: str, rule_id: int) -> Json:
        """The rule's live fields: a test may change them by hand, as in the customer portal."""
        with self.lock:
            return next(
                a.firewall_groups[group_id].rules[rule_id] for a in self.accounts if group_id in a.firewall_groups
            )

    # --- the door: rate limit, faults, authentication, routing ---------------------------------------------------

    def over_rate_limit(self, address: str) -> bool:
        """[spec] "more than 30 requests per second" from one IP address: a sliding one-second window.

        Refused requests do not count, so a client that backs off gets through once the window has moved on.
        """
        if self.rate_limit is None:
            return False
        now = time.monotonic()
        window = self._recent.setdefault(address, deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= self.rate_limit:
            self.rate_limited += 1
            return True
        window.append(now)
        return False

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.method in (None, method) and fault.path in (None, path):
                self.faults.remove(fault)
                return fault
        return None

    def authenticate(self, authorization: str | None, address: str) -> Account:
        """[spec] `Authorization: Bearer <key>`; [acl] [csi#97] the key's access control list."""
        scheme, _, key = (authorization or "").partition(" ")
        account = next((a for a in self.accounts if scheme == "Bearer" and key and a.api_key == key), None)
        if account is None:
            raise ApiError(401, UNKNOWN_KEY)
        if not account.allows(address):
            raise ApiError(401, f"Unauthorized IP address: {address}")
        return account

    def dispatch(
        self, method: str, path: str, query: dict[str, str], body: Any, authorization: str | None, address: str
    ) -> Answer:
        for pattern, public, handlers in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            account = None if public else self.authenticate(authorization, address)
            handler = handlers.get(method)
            if handler is None:
                raise ApiError(405, f"Method {method} is not allowed on {path}")  # (chosen)
            return handler(Call(account, match.groups(), query, body))
        self.authenticate(authorization, address)  # every public path has a route: an unknown one needs a key
        raise ApiError(404, "Not found.")  # (chosen)

    # --- the account --------------------------------------------------------------------------------------------

    def _get_account(self, call: Call) -> Answer:
        """[spec] get-account: {"account": {name, email, acls, balance, pending_charges, last_payment_date,
        last_payment_amount}}, the spec's example values."""
        account = call.owner
        return 200, {
            "account": {
                "name": f"ephemeros test {account.api_key[:4]}",
                "email": "admin@example.com",
                "acls": ["manage_users", "subscriptions", "billing", "support", "provisioning", "dns", "abuse"],
                "balance": -5519.11,
                "pending_charges": 57.03,
                "last_payment_date": "2020-10-10T01:56:20+00:00",
                "last_payment_amount": -1,
            }
        }

    # --- instances ----------------------------------------------------------------------------------------------

    def _plan(self, plan_id: Any, region: str) -> Json:
        plan = next((p for p in PLANS if p["id"] == plan_id), None)
        if plan is None or region not in plan["locations"]:
            raise ApiError(400, "Invalid plan chosen.")  # [tf#377]
        return plan

    def _render(self, instance: Instance) -> Json:
        self._advance(instance)
        return dict(instance.fields)

    def _advance(self, instance: Instance) -> None:
        """Booting moves on by itself: [spec] the create answer is pending/none/0.0.0.0; [tf#440] active comes
        with installingbooting, then ok; [spec] the get example is active/running/ok with its address."""
        if instance.held:
            return
        if self.boot_seconds is not None:
            progress = (time.monotonic() - instance.started) / self.boot_seconds if self.boot_seconds else 1.0
        else:
            progress = instance.reads / self.boot_reads if self.boot_reads else 1.0
        self._advance_to(instance, 2 if progress >= 1 else 1 if progress >= 0.5 else 0)

    def _advance_to(self, instance: Instance, stage: int) -> None:
        fields = instance.fields
        if instance.stage < 1 <= stage:
            network = ipaddress.ip_network(f"{instance.address}/23", strict=False)
            fields.update(
                status="active",
                server_status="installingbooting",
                main_ip=instance.address,
                netmask_v4=str(network.netmask),
                gateway_v4=str(network.network_address + 1),
                disk=self._plan(fields["plan"], fields["region"])["disk"],
                kvm=f"https://my.vultr.com/subs/vps/novnc/api.php?data={secrets.token_hex(16)}",
            )
            if "ipv6" in fields["features"]:
                self._v6_networks += 1
                prefix = f"2001:db8:{self._v6_networks >> 16:x}:{self._v6_networks & 0xFFFF:x}"
                fields.update(v6_network=f"{prefix}::", v6_main_ip=f"{prefix}:5400:4ff:fe00:1", v6_network_size=64)
        if instance.stage < 2 <= stage:
            fields["server_status"] = "ok"
        instance.stage = max(instance.stage, stage)

    def _features(self, fields: Json, enable_ipv6: bool | None, ddos: bool | None, backups: bool | None) -> None:
        """[spec] features lists "ddos_protection", "ipv6" and "auto_backups" as they are on."""
        features = set(fields["features"])
        for name, on in (("ipv6", enable_ipv6), ("ddos_protection", ddos), ("auto_backups", backups)):
            if on is True:
                features.add(name)
            elif on is False and name != "ipv6":  # IPv6 cannot be turned off once on
                features.discard(name)
        fields["features"] = sorted(features)

    def _backups(self, value: Any) -> bool:
        if value not in ("enabled", "disabled"):
            raise ApiError(400, "Invalid backups value: use enabled or disabled")  # (chosen) [models] the values
        return bool(value == "enabled")

    def _tags(self, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
            raise ApiError(400, BAD_REQUEST)
        return list(value)

    def _firewall_group_id(self, account: Account, value: Any) -> str:
        if value in (None, ""):
            return ""
        if value not in account.firewall_groups:
            raise ApiError(400, "Invalid firewall group ID.")  # (chosen)
        return str(value)

    def _create_instance(self, call: Call) -> Answer:
        """[spec] create-instance: 202 {"instance": {...}} with default_password; one of os_id, iso_id, ...

        The fake deploys from os_id only; the other image sources are refused (chosen)."""
        account = call.owner
        body = _object(call.body, CREATE_FIELDS)
        region = body.get("region")
        if not region or "plan" not in body:
            raise ApiError(400, BAD_REQUEST)  # [ops]
        if region not in _EVERYWHERE:
            raise ApiError(400, "Invalid region chosen.")  # (chosen) by analogy with [tf#377]
        plan = self._plan(body["plan"], region)
        sources = [key for key in ("os_id", "iso_id", "snapshot_id", "app_id", "image_id") if body.get(key)]
        if sources != ["os_id"]:
            raise ApiError(400, "Choose one of os_id, iso_id, snapshot_id, app_id or image_id.")  # (chosen)
        system = next((s for s in self.operating_systems() if s["id"] == body["os_id"]), None)
        if system is None:
            raise ApiError(400, "Invalid os_id.")  # (chosen)
        user_data = _base64(body["user_data"], "user_data") if "user_data" in body else ""
        backups = self._backups(body.get("backups", "disabled"))
        ssh_keys = body.get("sshkey_id", [])
        if not isinstance(ssh_keys, list) or any(key not in account.ssh_keys for key in ssh_keys):
            raise ApiError(400, "Invalid SSH key ID.")  # (chosen)
        firewall_group_id = self._firewall_group_id(account, body.get("firewall_group_id"))
        tags = self._tags(body.get("tags", []))
        address = str(next(self._instance_addresses))
        reserved_id = body.get("reserved_ipv4")
        if reserved_id:
            reserved = account.reserved_ips.get(reserved_id)
            if reserved is None or reserved["ip_type"] != "v4":
                raise ApiError(400, "Invalid reserved IPv4 ID.")  # (chosen)
            if reserved["region"] != region:
                raise ApiError(400, "The reserved IP is in another region than the instance.")  # (chosen)
            if reserved["instance_id"]:
                raise ApiError(400, ATTACHED_ELSEWHERE)  # [tf]
            address = reserved["subnet"]  # [models] "the floating IP to use as the main IP of this server"
        instance_id = str(uuid.uuid4())
        label = body.get("label", "")
        fields: Json = {  # [spec] the create answer's example, field by field
            "id": instance_id,
            "os": system["name"],
            "ram": plan["ram"],
            "disk": 0,
            "main_ip": UNASSIGNED,
            "vcpu_count": plan["vcpu_count"],
            "region": region,
            "plan": plan["id"],
            "date_created": _now(),
            "status": "pending",
            "allowed_bandwidth": plan["bandwidth"],
            "netmask_v4": "",
            "gateway_v4": UNASSIGNED,
            "power_status": "running",
            "server_status": "none",
            "v6_network": "",
            "v6_main_ip": "",
            "v6_network_size": 0,
            "label": label,
            "internal_ip": "",
            "kvm": "",
            "hostname": body.get("hostname") or label or "vultr.guest",  # (chosen) when none is given
            "os_id": system["id"],
            "app_id": 0,
            "image_id": "",
            "firewall_group_id": firewall_group_id,
            "features": [],
            "tags": tags,
            "user_scheme": body.get("user_scheme", "root"),
        }
        self._features(fields, bool(body.get("enable_ipv6")), bool(body.get("ddos_protection")), backups)
        instance = Instance(fields=fields, address=address, user_data=user_data)
        account.instances[instance_id] = instance
        if reserved_id:
            account.reserved_ips[reserved_id]["instance_id"] = instance_id
        alphabet = string.ascii_letters + string.digits + "#{}[]()=!?"
        password = "".join(secrets.choice(alphabet) for _ in range(16))
        return 202, {"instance": {**fields, "default_password": password}}  # [spec] only in the create answer

    def _instance(self, call: Call) -> Instance:
        instance = call.owner.instances.get(call.args[0])
        if instance is None:
            raise ApiError(404, GONE_INSTANCE)  # [tf]
        return instance

    def _get_instance(self, call: Call) -> Answer:
        instance = self._instance(call)
        instance.reads += 1
        return 200, {"instance": self._render(instance)}

    def _list_instances(self, call: Call) -> Answer:
        """[spec] list-instances, with its label, main_ip, region and firewall_group_id filters."""
        found = [self._render(instance) for instance in call.owner.instances.values()]
        for key in ("label", "main_ip", "region", "firewall_group_id"):
            if key in call.query:
                found = [fields for fields in found if fields[key] == call.query[key]]
        if "tag" in call.query:
            found = [fields for fields in found if call.query["tag"] in fields["tags"]]
        return _page("instances", found, call.query)

    def _update_instance(self, call: Call) -> Answer:
        """[spec] update-instance: 202 {"instance": {...}}; [models] the fields; [squat] no smaller plan."""
        account = call.owner
        instance = self._instance(call)
        body = _object(call.body, UPDATE_FIELDS)
        fields = instance.fields
        plan = self._plan(body["plan"], fields["region"]) if "plan" in body else None
        if plan is not None:
            current = self._plan(fields["plan"], fields["region"])
            if any(plan[key] < current[key] for key in ("vcpu_count", "ram", "disk")):
                raise ApiError(400, "Invalid plan chosen.")  # [squat] no downgrade; wording from [tf#377]
        firewall_group_id = (
            self._firewall_group_id(account, body["firewall_group_id"]) if "firewall_group_id" in body else None
        )
        backups = self._backups(body["backups"]) if "backups" in body else None
        user_data = _base64(body["user_data"], "user_data") if "user_data" in body else None
        tags = self._tags(body["tags"]) if "tags" in body else None
        if "os_id" in body and not any(s["id"] == body["os_id"] for s in self.operating_systems()):
            raise ApiError(400, "Invalid os_id.")  # (chosen)
        if plan is not None:
            fields.update(plan=plan["id"], ram=plan["ram"], vcpu_count=plan["vcpu_count"])
            fields.update(allowed_bandwidth=plan["bandwidth"], disk=plan["disk"] if instance.stage else 0)
        if "label" in body:
            fields["label"] = str(body["label"])
        if tags is not None:
            fields["tags"] = tags
        if firewall_group_id is not None:
            fields["firewall_group_id"] = firewall_group_id
        if user_data is not None:
            instance.user_data = user_data
        if "user_scheme" in body:
            fields["user_scheme"] = body["user_scheme"]
        ipv6 = True if body.get("enable_ipv6") else None
        ddos = bool(body["ddos_protection"]) if "ddos_protection" in body else None
        self._features(fields, ipv6, ddos, backups)
        if "os_id" in body:  # [spec] changing os_id reinstalls the instance
            system = next(s for s in OPERATING_SYSTEMS if s["id"] == body["os_id"])
            fields.update(os_id=system["id"], os=system["name"], server_status="installingbooting")
            instance.stage, instance.reads, instance.started = 1, 0, time.monotonic()
        return 202, {"instance": self._render(instance)}

    def _drop_instance(self, account: Account, instance_id: str) -> None:
        del account.instances[instance_id]
        for reserved in account.reserved_ips.values():
            if reserved["instance_id"] == instance_id:
                reserved["instance_id"] = ""  # a reserved IP outlives its instance

    def _delete_instance(self, call: Call) -> Answer:
        self._instance(call)
        self._drop_instance(call.owner, call.args[0])
        return 204, None  # [spec] delete-instance

    def _user_data(self, call: Call) -> Answer:
        return 200, {"user_data": {"data": self._instance(call).user_data}}  # [spec] get-instance-userdata

    def _get_backup_schedule(self, call: Call) -> Answer:
        """[spec] get-instance-backup-schedule: {"backup_schedule": {"enabled": ..., "type": ..., ...}}."""
        instance = self._instance(call)
        schedule = {"enabled": "auto_backups" in instance.fields["features"], **instance.backup_schedule}
        return 200, {"backup_schedule": schedule}

    def _set_backup_schedule(self, call: Call) -> Answer:
        """[spec] create-instance-backup-schedule: `type` required; 200 without a body. [models] the values."""
        instance = self._instance(call)
        body = _object(call.body, frozenset({"type", "hour", "dow", "dom"}))
        if body.get("type") not in BACKUP_TYPES:
            raise ApiError(400, "Invalid backup schedule type.")  # (chosen)
        limits = {"hour": range(24), "dow": range(1, 8), "dom": range(1, 29)}
        for key, allowed in limits.items():
            if key in body and body[key] not in allowed:
                raise ApiError(400, f"Invalid backup schedule {key}.")  # (chosen)
        if "auto_backups" not in instance.fields["features"]:
            raise ApiError(400, "Automatic backups are not enabled on this instance.")  # (chosen)
        instance.backup_schedule = {
            "type": body["type"],
            "next_scheduled_time_utc": datetime.now(UTC).strftime("%Y-%m-%d 00:00:00"),
            "hour": body.get("hour", 0),
            "dow": body.get("dow", 1),
            "dom": body.get("dom", 1),
        }
        return 200, None

    # --- reserved IPs -------------------------------------------------------------------------------------------

    def _reserved(self, call: Call) -> Json:
        reserved = call.owner.reserved_ips.get(call.args[0])
        if reserved is None:
            raise ApiError(404, "Reserved IP not found.")  # (chosen)
        return reserved

    def _create_reserved_ip(self, call: Call) -> Answer:
        """[spec] create-reserved-ip: `region` and `ip_type` required; 201 {"reserved_ip": {...}}."""
        account = call.owner
        body = _object(call.body, frozenset({"region", "ip_type", "label", "instance_id"}))  # [govultr] instance_id
        if body.get("region") not in _EVERYWHERE:
            raise ApiError(400, "Invalid region chosen." if body.get("region") else BAD_REQUEST)
        if body.get("ip_type") not in ("v4", "v6"):
            raise ApiError(400, BAD_REQUEST)
        if body["ip_type"] == "v4":
            subnet, size = str(next(self._reserved_addresses)), 32
        else:
            self._v6_networks += 1
            subnet, size = f"2001:db8:5:{self._v6_networks:x}::", 64
        reserved = {
            "id": str(uuid.uuid4()),
            "region": body["region"],
            "ip_type": body["ip_type"],
            "subnet": subnet,
            "subnet_size": size,
            "label": str(body.get("label", "")),
            "instance_id": "",
        }
        account.reserved_ips[reserved["id"]] = reserved
        if body.get("instance_id"):
            self._attach(account, reserved, body["instance_id"])
        return 201, {"reserved_ip": dict(reserved)}

    def _list_reserved_ips(self, call: Call) -> Answer:
        return _page("reserved_ips", [dict(r) for r in call.owner.reserved_ips.values()], call.query)

    def _get_reserved_ip(self, call: Call) -> Answer:
        return 200, {"reserved_ip": dict(self._reserved(call))}

    def _label_reserved_ip(self, call: Call) -> Answer:
        """[spec] patch-reserved-ips-reserved-ip: label only; 200 {"reserved_ip": {...}}."""
        reserved = self._reserved(call)
        body = _object(call.body, frozenset({"label"}))
        reserved["label"] = str(body.get("label", reserved["label"]))
        return 200, {"reserved_ip": dict(reserved)}

    def _delete_reserved_ip(self, call: Call) -> Answer:
        self._reserved(call)
        del call.owner.reserved_ips[call.args[0]]
        return 204, None

    def _attach(self, account: Account, reserved: Json, instance_id: Any) -> None:
        instance = account.instances.get(instance_id)
        if instance is None:
            raise ApiError(404, GONE_INSTANCE)  # [tf]
        if instance.fields["region"] != reserved["region"]:
            raise ApiError(400, "The reserved IP is in another region than the instance.")  # (chosen)
        if reserved["instance_id"] and reserved["instance_id"] != instance_id:
            raise ApiError(400, ATTACHED_ELSEWHERE)  # [tf]
        reserved["instance_id"] = instance_id

    def _attach_reserved_ip(self, call: Call) -> Answer:
        """[spec] attach-reserved-ip {instance_id}: 204."""
        reserved = self._reserved(call)
        body = _object(call.body, frozenset({"instance_id"}))
        self._attach(call.owner, reserved, body.get("instance_id"))
        return 204, None

    def _detach_reserved_ip(self, call: Call) -> Answer:
        """[spec] detach-reserved-ip: 204."""
        reserved = self._reserved(call)
        if not reserved["instance_id"]:
            raise ApiError(400, "The reserved IP is not attached.")  # (chosen)
        reserved["instance_id"] = ""
        return 204, None

    # --- firewall groups and rules ------------------------------------------------------------------------------

    def _group(self, call: Call) -> FirewallGroup:
        group = call.owner.firewall_groups.get(call.args[0])
        if group is None:
            raise ApiError(404, "Firewall group not found.")  # (chosen) [tf] the body has "status":404
        return group

    def _render_group(self, account: Account, group: FirewallGroup) -> Json:
        """[spec] firewall_group: id, description, dates, instance_count, rule_count, max_rule_count 50."""
        users = [i for i in account.instances.values() if i.fields["firewall_group_id"] == group.fields["id"]]
        return {**group.fields, "instance_count": len(users), "rule_count": len(group.rules), "max_rule_count": 50}

    def _create_firewall_group(self, call: Call) -> Answer:
        """[spec] create-firewall-group {description}: 201 {"firewall_group": {...}}."""
        account = call.owner
        body = _object(call.body, frozenset({"description"}))
        now = _now()
        group_id = str(uuid.uuid4())
        fields = {"id": group_id, "description": str(body.get("description", "")), "date_created": now}
        group = FirewallGroup(fields={**fields, "date_modified": now})
        account.firewall_groups[group_id] = group
        return 201, {"firewall_group": self._render_group(account, group)}

    def _list_firewall_groups(self, call: Call) -> Answer:
        account = call.owner
        groups = [self._render_group(account, group) for group in account.firewall_groups.values()]
        return _page("firewall_groups", groups, call.query)

    def _get_firewall_group(self, call: Call) -> Answer:
        return 200, {"firewall_group": self._render_group(call.owner, self._group(call))}

    def _describe_firewall_group(self, call: Call) -> Answer:
        """[spec] update-firewall-group {description}: 204."""
        group = self._group(call)
        body = _object(call.body, frozenset({"description"}))
        if "description" not in body:
            raise ApiError(400, BAD_REQUEST)
        group.fields.update(description=str(body["description"]), date_modified=_now())
        return 204, None

    def _delete_firewall_group(self, call: Call) -> Answer:
        self._group(call)
        del call.owner.firewall_groups[call.args[0]]
        for instance in call.owner.instances.values():
            if instance.fields["firewall_group_id"] == call.args[0]:
                instance.fields["firewall_group_id"] = ""
        return 204, None

    def _rule_fields(self, body: Any) -> Json:
        """[spec] ip_type, protocol, subnet and subnet_size required; [models] port for TCP/UDP only."""
        body = _object(body, RULE_FIELDS)
        if any(key not in body for key in ("ip_type", "protocol", "subnet", "subnet_size")):
            raise ApiError(400, BAD_REQUEST)
        ip_type, protocol = body["ip_type"], str(body["protocol"]).lower()
        if ip_type not in ("v4", "v6") or protocol not in PROTOCOLS:
            raise ApiError(400, BAD_REQUEST)
        try:
            network = ipaddress.ip_network(f"{body['subnet']}/{int(body['subnet_size'])}", strict=False)
        except (TypeError, ValueError):
            raise ApiError(400, "Invalid subnet.") from None  # (chosen)
        if network.version != (4 if ip_type == "v4" else 6):
            raise ApiError(400, "Invalid subnet: it does not match ip_type.")  # (chosen) [models]
        port = str(body.get("port", "")) if protocol in ("tcp", "udp") else ""
        if port and not re.fullmatch(r"\d{1,5}(:\d{1,5})?", port):
            raise ApiError(400, "Invalid port.")  # (chosen) [models] a port or a colon-separated range
        source = str(body.get("source", ""))
        if source not in ("", "cloudflare"):
            raise ApiError(400, "Invalid source.")  # (chosen) load balancer sources are not modelled
        return {
            "type": ip_type,  # [spec] deprecated twin of ip_type
            "ip_type": ip_type,
            "action": "accept",
            "protocol": protocol,
            "port": port,
            "subnet": str(body["subnet"]),
            "subnet_size": int(body["subnet_size"]),
            "source": source,
            "notes": str(body.get("notes", "")),
        }

    def _create_rule(self, call: Call) -> Answer:
        """[spec] post-firewalls-firewall-group-id-rules: 201 {"firewall_rule": {...}}; [node] no duplicates."""
        group = self._group(call)
        rule = self._rule_fields(call.body)
        same = ("ip_type", "protocol", "port", "subnet", "subnet_size", "source")
        if any(all(other[key] == rule[key] for key in same) for other in group.rules.values()):
            raise ApiError(400, "This firewall rule already exists.")  # [node] an error; (chosen) its wording
        if len(group.rules) >= MAX_RULES:
            raise ApiError(400, f"A firewall group holds at most {MAX_RULES} rules.")  # (chosen)
        rule = {"id": group.next_rule, **rule}
        group.rules[group.next_rule] = rule
        group.next_rule += 1
        group.fields["date_modified"] = _now()
        return 201, {"firewall_rule": dict(rule)}

    def _list_rules(self, call: Call) -> Answer:
        return _page("firewall_rules", [dict(rule) for rule in self._group(call).rules.values()], call.query)

    def _rule(self, call: Call) -> tuple[FirewallGroup, int]:
        group = self._group(call)
        rule_id = int(call.args[1]) if call.args[1].isdigit() else -1
        if rule_id not in group.rules:
            raise ApiError(404, "Firewall rule not found.")  # (chosen)
        return group, rule_id

    def _get_rule(self, call: Call) -> Answer:
        group, rule_id = self._rule(call)
        return 200, {"firewall_rule": dict(group.rules[rule_id])}

    def _delete_rule(self, call: Call) -> Answer:
        group, rule_id = self._rule(call)
        del group.rules[rule_id]
        group.fields["date_modified"] = _now()
        return 204, None

    # --- SSH keys -----------------------------------------------------------------------------------------------

    def _ssh_key(self, call: Call) -> Json:
        key = call.owner.ssh_keys.get(call.args[0])
        if key is None:
            raise ApiError(404, "SSH key not found.")  # (chosen)
        return key

    def _key_text(self, value: Any) -> str:
        if not isinstance(value, str) or not re.match(r"(ssh-|ecdsa-|sk-)\S+ \S+", value):
            raise ApiError(400, "Invalid SSH key.")  # (chosen)
        return value

    def _create_ssh_key(self, call: Call) -> Answer:
        """[spec] create-ssh-key {name, ssh_key}: 201 {"ssh_key": {id, date_created, name, ssh_key}}."""
        body = _object(call.body, frozenset({"name", "ssh_key"}))
        if not body.get("name"):
            raise ApiError(400, BAD_REQUEST)
        key = {"id": str(uuid.uuid4()), "date_created": _now(), "name": str(body["name"])}
        key["ssh_key"] = self._key_text(body.get("ssh_key"))
        call.owner.ssh_keys[key["id"]] = key
        return 201, {"ssh_key": dict(key)}

    def _list_ssh_keys(self, call: Call) -> Answer:
        return _page("ssh_keys", [dict(key) for key in call.owner.ssh_keys.values()], call.query)

    def _get_ssh_key(self, call: Call) -> Answer:
        return 200, {"ssh_key": dict(self._ssh_key(call))}

    def _update_ssh_key(self, call: Call) -> Answer:
        """[spec] update-ssh-key: name and ssh_key optional; 204."""
        key = self._ssh_key(call)
        body = _object(call.body, frozenset({"name", "ssh_key"}))
        if "ssh_key" in body:
            key["ssh_key"] = self._key_text(body["ssh_key"])
        if "name" in body:
            key["name"] = str(body["name"])
        return 204, None

    def _delete_ssh_key(self, call: Call) -> Answer:
        self._ssh_key(call)
        del call.owner.ssh_keys[call.args[0]]
        return 204, None


class _Handler(BaseHTTPRequestHandler):
    fake: FakeVultr

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, error: ApiError) -> None:
        self._send(error.status, json.dumps({"error": error.message, "status": error.status}))

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode(errors="replace") if length else ""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        fake = self.fake
        address = self.client_address[0]
        with fake.lock:
            fake.requests.append(RequestRecord(method, split.path, query, body))
            if fake.over_rate_limit(address):
                self._error(ApiError(429, RATE_LIMITED))
                return
            fault = fake.take_fault(method, split.path)
            if fault is not None and not fault.processed:
                self._send(fault.status, fault.body, fault.headers)
                return
            try:
                status, document = fake.dispatch(
                    method, split.path, query, body, self.headers.get("Authorization"), address
                )
            except ApiError as error:
                status, document = error.status, {"error": error.message, "status": error.status}
            if fault is not None:
                self._send(fault.status, fault.body, fault.headers)
                return
            self._send(status, json.dumps(document) if document is not None else "")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


def running(fake: FakeVultr, host: str = "127.0.0.1") -> AbstractContextManager[FakeVultr]:
    """Serve `fake` on a free port of `host` (loopback by default) for the duration of the block; `fake.url` is its
    base URL."""
    return serve(fake, _Handler, host)
