"""The Vultr API v2 client against the local fake Vultr: paging, waiting, retries, limits and errors."""

from __future__ import annotations

import base64
import ipaddress
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from harness.fakes.vultr import Account, FakeVultr, running
from providers.vultr import api
from providers.vultr.api import VultrApi, VultrError
from providers.vultr.instance import InstanceProps, InstanceProvider
from providers.vultr.reserved_ip import ReservedIpProps, ReservedIpProvider

DEBIAN = "Debian 12 x64 (bookworm)"
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBy4wRFjJVxc8hW5oKvp9tJDBmXhZbWZcl9vxBUr4WqC ops@ephemeros"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVultr]:
    monkeypatch.setattr(api, "BACKOFF", 0.1)  # the same retries, with waits of 0, 0.2, 0.4, 0.8 ... seconds
    with running(FakeVultr()) as server:
        yield server


@pytest.fixture
def account(fake: FakeVultr) -> Account:
    return fake.add_account()


@pytest.fixture
def client(fake: FakeVultr, account: Account) -> VultrApi:
    return VultrApi(api_url=fake.url, api_key=account.api_key, timeout=5)


def create(client: VultrApi, **changes: Any) -> dict[str, Any]:
    body = {
        "region": "ewr",
        "plan": "vc2-1c-2gb",
        "os_id": client.os_id(DEBIAN),
        "label": "datastore",
        "hostname": "datastore",
        "tags": ["ephemeros"],
        "backups": "disabled",
        **changes,
    }
    instance: dict[str, Any] = client.post("/instances", body)["instance"]
    return instance


def test_os_id_resolves_names_through_the_paged_os_list(
    fake: FakeVultr, client: VultrApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "PER_PAGE", 7)
    assert client.os_id(DEBIAN) == 2136
    assert client.os_id("Debian 11 x64 (bullseye)") == 477
    assert client.os_id("Ubuntu 24.04 LTS x64") == 2284
    pages = fake.requests_to("GET", "/v2/os")
    assert len(pages) >= 3 * 5  # three lookups of a 30-entry list, 7 a page
    assert [page.query.get("per_page") for page in pages[:5]] == ["7"] * 5


def test_an_unknown_os_name_fails_with_its_close_matches(client: VultrApi) -> None:
    with pytest.raises(
        VultrError,
        match=r"no operating system named 'Debian 12 x64' \(GET /v2/os\); close matches: 'Debian 12 x64 \(bookworm\)'",
    ):
        client.os_id("Debian 12 x64")


def test_list_follows_the_cursor_over_several_pages(fake: FakeVultr, client: VultrApi) -> None:
    for number in range(7):
        client.post("/ssh-keys", {"name": f"key{number}", "ssh_key": PUBLIC_KEY})
    keys = client.list("/ssh-keys", "ssh_keys", per_page=3)
    assert [key["name"] for key in keys] == [f"key{number}" for number in range(7)]
    pages = fake.requests_to("GET", "/v2/ssh-keys")
    assert len(pages) == 3
    assert "cursor" not in pages[0].query
    assert pages[1].query["cursor"] != pages[2].query["cursor"]
    assert [plan["id"] for plan in client.list("/plans", "plans", per_page=2)][:2] == ["vc2-1c-1gb", "vc2-1c-2gb"]


def test_a_created_instance_is_waited_for_until_active_running_ok_with_its_address(
    fake: FakeVultr, client: VultrApi
) -> None:
    created = create(client)
    assert (created["status"], created["server_status"], created["main_ip"]) == ("pending", "none", api.UNASSIGNED_IP)
    assert created["default_password"]
    ready = client.wait_for_instance(created["id"], timeout=5, poll=0.01)
    assert (ready["status"], ready["power_status"], ready["server_status"]) == ("active", "running", "ok")
    assert ipaddress.ip_address(ready["main_ip"]).is_global is False  # a test address, but a real one
    assert ready["main_ip"] != api.UNASSIGNED_IP
    assert "default_password" not in ready  # only the create answer carries it
    assert (ready["plan"], ready["ram"], ready["os_id"], ready["tags"]) == ("vc2-1c-2gb", 2048, 2136, ["ephemeros"])
    assert len(fake.requests_to("GET", f"/v2/instances/{created['id']}")) == 2


def test_booting_can_take_time_instead_of_reads(fake: FakeVultr, client: VultrApi) -> None:
    fake.boot_seconds = 0.3
    started = time.monotonic()
    created = create(client)
    client.wait_for_instance(created["id"], timeout=5, poll=0.05)
    assert time.monotonic() - started >= 0.3


def test_a_reserved_ip_given_at_create_becomes_the_main_ip(client: VultrApi) -> None:
    reserved = client.post("/reserved-ips", {"region": "ewr", "ip_type": "v4", "label": "datastore"})["reserved_ip"]
    created = create(client, reserved_ipv4=reserved["id"])
    ready = client.wait_for_instance(created["id"], timeout=5, poll=0.01)
    assert ready["main_ip"] == reserved["subnet"]
    read = client.get(f"/reserved-ips/{reserved['id']}")
    assert read is not None
    assert read["reserved_ip"]["instance_id"] == created["id"]
    with pytest.raises(VultrError, match="answered 400: Floating IPv4 address is already attached"):
        create(client, reserved_ipv4=reserved["id"])
    elsewhere = client.post("/reserved-ips", {"region": "fra", "ip_type": "v4"})["reserved_ip"]
    with pytest.raises(VultrError, match="answered 400: The reserved IP is in another region"):
        client.post(f"/reserved-ips/{elsewhere['id']}/attach", {"instance_id": created["id"]})


def test_patch_upgrades_the_plan_and_relabels_but_refuses_a_downgrade(client: VultrApi) -> None:
    created = create(client)
    path = f"/instances/{created['id']}"
    answer = client.patch(path, {"plan": "vc2-2c-4gb", "label": "pg", "tags": ["ephemeros", "datastore"]})
    assert (answer["instance"]["plan"], answer["instance"]["ram"]) == ("vc2-2c-4gb", 4096)
    read = client.instance(created["id"])
    assert read is not None
    assert (read["plan"], read["label"], read["tags"]) == ("vc2-2c-4gb", "pg", ["ephemeros", "datastore"])
    with pytest.raises(VultrError, match=rf"PATCH /v2{path} answered 400: Invalid plan chosen\.") as raised:
        client.patch(path, {"plan": "vc2-1c-1gb"})
    assert raised.value.status == 400
    with pytest.raises(VultrError, match="answered 400: Unknown field: hostname"):
        client.patch(path, {"hostname": "renamed"})


def test_delete_then_get_is_none_and_deleting_again_is_fine(fake: FakeVultr, client: VultrApi) -> None:
    created = create(client)
    client.delete(f"/instances/{created['id']}")
    assert client.instance(created["id"]) is None
    assert client.get(f"/instances/{created['id']}") is None
    client.delete(f"/instances/{created['id']}")  # 404: already gone
    assert fake.instances() == []


def test_an_instance_deleted_by_hand_ends_the_wait(fake: FakeVultr, client: VultrApi) -> None:
    created = create(client)
    fake.remove_instance(created["id"])
    with pytest.raises(VultrError, match=f"instance {created['id']} no longer exists"):
        client.wait_for_instance(created["id"], timeout=5, poll=0.01)


def test_a_429_is_retried_after_what_retry_after_asks(fake: FakeVultr, account: Account, client: VultrApi) -> None:
    fake.fail_next(429, retry_after=1, method="POST", path="/v2/ssh-keys")
    started = time.monotonic()
    client.post("/ssh-keys", {"name": "ops", "ssh_key": PUBLIC_KEY})
    assert time.monotonic() - started >= 0.95  # backoff alone would have retried at once
    assert len(fake.requests_to("POST", "/v2/ssh-keys")) == 2
    assert len(account.ssh_keys) == 1


def test_a_5xx_is_retried_for_a_get(fake: FakeVultr, client: VultrApi) -> None:
    created = create(client)
    fake.fail_next(503, times=2, method="GET", path=f"/v2/instances/{created['id']}")
    instance = client.instance(created["id"])
    assert instance is not None
    assert instance["id"] == created["id"]
    assert len(fake.requests_to("GET", f"/v2/instances/{created['id']}")) == 3


@pytest.mark.parametrize(("status", "processed", "instances"), [(502, True, 1), (500, False, 0), (503, False, 0)])
def test_a_post_answered_5xx_is_never_sent_twice(
    fake: FakeVultr, client: VultrApi, status: int, processed: bool, instances: int
) -> None:
    os_id = client.os_id(DEBIAN)
    fake.fail_next(status, times=3, method="POST", path="/v2/instances", processed=processed, error="upstream timeout")
    with pytest.raises(VultrError, match=f"POST /v2/instances answered {status}: upstream timeout"):
        create(client, os_id=os_id)
    assert len(fake.requests_to("POST", "/v2/instances")) == 1
    assert len(fake.instances()) == instances  # processed: the instance exists, and only once


def test_errors_carry_the_apis_text_and_never_the_key(account: Account, client: VultrApi) -> None:
    with pytest.raises(VultrError) as raised:
        create(client, plan="vc2-64c-512gb")
    assert str(raised.value) == "Vultr API: POST /v2/instances answered 400: Invalid plan chosen."
    assert (raised.value.status, raised.value.api_error) == (400, "Invalid plan chosen.")
    with pytest.raises(VultrError, match="answered 400: Invalid plan chosen") as elsewhere:
        create(client, plan="vhf-1c-1gb", region="ams")  # offered in ewr only
    assert account.api_key not in str(raised.value) + str(elsewhere.value)


def test_a_wrong_key_fails_with_the_401_hint(fake: FakeVultr, account: Account) -> None:
    wrong = "X" * 36
    stranger = VultrApi(api_url=fake.url, api_key=wrong)
    with pytest.raises(VultrError, match=r"answered 401: You did not supply valid authentication credentials\.") as e:
        stranger.instance("cb676a46-66fd-4dfb-b839-443f2e6c0b60")
    assert "the API key, vultrApiKey, is wrong, or this machine's IP address is not in the API key's Access" in str(
        e.value
    )
    assert wrong not in str(e.value)
    assert len(fake.requests) == 1  # a 401 is not retried


def test_an_address_outside_the_keys_access_control_list_is_refused(fake: FakeVultr, account: Account) -> None:
    account.allowed_subnets = ["198.51.100.0/24"]
    client = VultrApi(api_url=fake.url, api_key=account.api_key)
    with pytest.raises(VultrError, match=r"answered 401: Unauthorized IP address: 127\.0\.0\.1 \(.*Access Control"):
        client.list("/instances", "instances")
    assert client.list("/os", "os")  # the OS list is public: no key, no access control


def test_the_fake_enforces_30_requests_per_second(fake: FakeVultr, account: Account) -> None:
    headers = {"Authorization": f"Bearer {account.api_key}"}
    answers = []
    started = time.monotonic()
    for _ in range(31):
        answers.append(requests.get(f"{fake.url}/v2/instances", headers=headers, timeout=5))
    assert time.monotonic() - started < 1, "the burst must fit in one second to test the limit"
    assert [answer.status_code for answer in answers] == [200] * 30 + [429]
    assert answers[-1].json() == {"error": "Rate limit exceeded: more than 30 requests per second.", "status": 429}
    assert fake.rate_limited == 1


def test_the_client_gets_through_the_rate_limit(fake: FakeVultr, client: VultrApi) -> None:
    for _ in range(40):
        assert client.get("/instances") is not None
    assert fake.rate_limited >= 1  # it was refused, backed off and got through


def test_a_wait_that_times_out_names_what_it_still_waits_for(fake: FakeVultr, client: VultrApi) -> None:
    created = create(client)
    fake.hold_boot(created["id"])
    expected = (
        r"not ready after 0\.2s: still waiting for status 'active' \(is 'pending'\), "
        r"server_status 'ok' \(is 'none'\), an assigned main_ip \(is '0\.0\.0\.0'\)"
    )
    with pytest.raises(VultrError, match=expected):
        client.wait_for_instance(created["id"], timeout=0.2, poll=0.05)

    booting = create(client)
    client.instance(booting["id"])  # halfway: active with an address, still installing
    fake.hold_boot(booting["id"])
    with pytest.raises(VultrError, match=r"still waiting for server_status 'ok' \(is 'installingbooting'\)$"):
        client.wait_for_instance(booting["id"], timeout=0.2, poll=0.05)
    fake.instance(booting["id"])["power_status"] = "stopped"  # stopped by hand
    with pytest.raises(VultrError, match=r"power_status 'running' \(is 'stopped'\)"):
        client.wait_for_instance(booting["id"], timeout=0.1, poll=0.05)


def test_user_data_and_the_backup_schedule(client: VultrApi) -> None:
    user_data = base64.b64encode(b"#cloud-config\npackages: [postgresql]\n").decode()
    created = create(client, user_data=user_data, backups="enabled")
    answer = client.get(f"/instances/{created['id']}/user-data")
    assert answer == {"user_data": {"data": user_data}}
    assert client.post(f"/instances/{created['id']}/backup-schedule", {"type": "daily", "hour": 3}) == {}
    schedule = client.get(f"/instances/{created['id']}/backup-schedule")
    assert schedule is not None
    assert (schedule["backup_schedule"]["enabled"], schedule["backup_schedule"]["hour"]) == (True, 3)
    with pytest.raises(VultrError, match="answered 400: Invalid user_data"):
        create(client, user_data="not base64!")


def test_firewall_rules_are_created_listed_and_deleted_but_never_updated(fake: FakeVultr, client: VultrApi) -> None:
    group = client.post("/firewalls", {"description": "datastore"})["firewall_group"]
    rules = f"/firewalls/{group['id']}/rules"
    postgres = {"ip_type": "v4", "protocol": "tcp", "subnet": "192.0.2.0", "subnet_size": 24, "port": "5432"}
    rule = client.post(rules, {**postgres, "notes": "k3s servers"})["firewall_rule"]
    assert (rule["id"], rule["action"], rule["port"], rule["source"]) == (1, "accept", "5432", "")
    with pytest.raises(VultrError, match="answered 400: This firewall rule already exists"):
        client.post(rules, postgres)
    with pytest.raises(VultrError, match=rf"PUT /v2{rules}/1 answered 405"):
        client.put(f"{rules}/1", {**postgres, "port": "5433"})
    fake.firewall_rule(group["id"], 1)["port"] = "5433"  # changed by hand in the customer portal
    assert [found["port"] for found in client.list(rules, "firewall_rules")] == ["5433"]
    assert client.put(f"/firewalls/{group['id']}", {"description": "pg"}) == {}
    read = client.get(f"/firewalls/{group['id']}")
    assert read is not None
    assert (read["firewall_group"]["description"], read["firewall_group"]["rule_count"]) == ("pg", 1)
    client.delete(f"{rules}/1")
    assert client.list(rules, "firewall_rules") == []
    assert client.get(f"{rules}/1") is None


def test_an_unreachable_api_fails_naming_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "BACKOFF", 0.001)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    key = "K" * 36
    with pytest.raises(VultrError, match=r"POST /v2/instances failed: .*Max retries exceeded") as raised:
        VultrApi(api_url=closed, api_key=key).post("/instances", {"region": "ewr"})
    assert key not in str(raised.value)


def instance_props(fake: FakeVultr, account: Account, **changes: Any) -> dict[str, Any]:
    props = InstanceProps(
        api_url=fake.url,
        api_key=account.api_key,
        region="ewr",
        plan="vc2-1c-1gb",
        os=DEBIAN,
        hostname="lab-datastore",
        label="ephemeros lab datastore",
        tags=("ephemeros",),
        user_data=base64.b64encode(b"#cloud-config\n").decode(),
        user_data_digest="0" * 64,
        backups=False,
        backup_type="daily",
        backup_hour=3,
        backup_day_of_week=0,
        backup_day_of_month=0,
        firewall_group_id="",
        reserved_ip_id="",
        certificate_names=(),
    )
    return {**props.to_props(), **changes}


def test_a_vm_vultr_refuses_names_the_settings_to_check(fake: FakeVultr, account: Account) -> None:
    with pytest.raises(VultrError, match=r"Invalid plan chosen\.: Vultr refused the VM as configured; check "
                       r"ephemeros:datastore\.vultr\.region and plan"):  # fmt: skip
        InstanceProvider().create(instance_props(fake, account, plan="vc2-no-such-plan"))
    with pytest.raises(VultrError, match=r"^ephemeros:datastore\.vultr\.os: Vultr offers no operating system"):
        InstanceProvider().create(instance_props(fake, account, os="Debian 99"))
    assert fake.instances() == []


@pytest.mark.parametrize("suffix", ["", "/", "/v2", "/v2/"])
def test_the_api_url_with_or_without_its_version_root_is_the_same_api(
    fake: FakeVultr, account: Account, suffix: str
) -> None:
    client = VultrApi(api_url=fake.url + suffix, api_key=account.api_key)
    assert client.get("/account") is not None
    assert client.origin == fake.url
    assert [record.path for record in fake.requests] == ["/v2/account"]
    with pytest.raises(VultrError, match=r"^Vultr API: POST /v2/instances/gone/backup-schedule answered 404"):
        client.post("/instances/gone/backup-schedule", {"type": "daily"})  # the path named as it was requested


def test_errors_name_the_path_as_requested_behind_a_prefix(fake: FakeVultr, account: Account) -> None:
    client = VultrApi(api_url=f"{fake.url}/vultr/", api_key=account.api_key)
    with pytest.raises(VultrError, match=r"^Vultr API: POST /vultr/v2/instances answered 404"):
        client.post("/instances", {"region": "ewr"})
    assert fake.requests[-1].path == "/vultr/v2/instances"


def reserved_ip(client: VultrApi, fake: FakeVultr, label: str) -> tuple[dict[str, Any], bool]:
    def find() -> dict[str, Any] | None:
        return next((r for r in client.list("/reserved-ips", "reserved_ips") if r["label"] == label), None)

    made, adopted = client.create(
        "/reserved-ips", {"region": "ewr", "ip_type": "v4", "label": label}, "reserved_ip", find=find
    )
    return made, adopted


def test_a_create_answered_5xx_after_the_api_acted_adopts_what_it_made(fake: FakeVultr, client: VultrApi) -> None:
    fake.fail_next(502, method="POST", path="/v2/reserved-ips", processed=True)
    made, adopted = reserved_ip(client, fake, "datastore [ephemeros 0123456789abcdef]")
    assert adopted
    assert len(fake.requests_to("POST", "/v2/reserved-ips")) == 1  # found, not posted again
    assert [r["id"] for r in client.list("/reserved-ips", "reserved_ips")] == [made["id"]]


def test_a_create_answered_5xx_before_the_api_acted_posts_again(fake: FakeVultr, client: VultrApi) -> None:
    fake.fail_next(503, times=2, method="POST", path="/v2/reserved-ips")
    made, adopted = reserved_ip(client, fake, "datastore")
    assert not adopted
    assert len(fake.requests_to("POST", "/v2/reserved-ips")) == 3
    assert [r["id"] for r in client.list("/reserved-ips", "reserved_ips")] == [made["id"]]


def test_a_create_refused_is_not_posted_again(fake: FakeVultr, client: VultrApi) -> None:
    with pytest.raises(VultrError, match="answered 400: Invalid region chosen"):
        client.create("/reserved-ips", {"region": "mars", "ip_type": "v4"}, "reserved_ip", find=lambda: None)
    assert len(fake.requests_to("POST", "/v2/reserved-ips")) == 1


def test_a_create_finds_what_a_run_cut_short_made_before_posting(fake: FakeVultr, client: VultrApi) -> None:
    first, _ = reserved_ip(client, fake, "datastore [ephemeros 0123456789abcdef]")
    again, adopted = reserved_ip(client, fake, "datastore [ephemeros 0123456789abcdef]")
    assert adopted
    assert again["id"] == first["id"]
    assert len(fake.requests_to("POST", "/v2/reserved-ips")) == 1


def test_a_mark_is_the_owners_and_what_makes_the_object_anew(fake: FakeVultr, account: Account) -> None:
    """A create retried with the same owner and values adopts (a run cut short); a replacement in another region,
    made before its predecessor is deleted, and another stack's object (another owner) are objects of their own."""
    provider = ReservedIpProvider()

    def made(owner: str, region: str) -> str:
        props = ReservedIpProps(api_url=fake.url, api_key=account.api_key, owner=owner, region=region, label="db")
        return str(provider.create(props.to_props()).id)

    first = made("owner-a", "ams")
    assert made("owner-a", "ams") == first
    assert len({first, made("owner-a", "fra"), made("owner-b", "ams")}) == 3
    assert len(account.reserved_ips) == 3


def test_an_action_is_retried_after_a_5xx(fake: FakeVultr, client: VultrApi) -> None:
    created = create(client, backups="enabled")
    path = f"/v2/instances/{created['id']}/backup-schedule"
    fake.fail_next(503, times=2, method="POST", path=path, processed=True)
    client.act(path.removeprefix("/v2"), {"type": "weekly", "hour": 4})
    assert len(fake.requests_to("POST", path)) == 3
    schedule = client.get(path.removeprefix("/v2"))
    assert schedule is not None
    assert (schedule["backup_schedule"]["type"], schedule["backup_schedule"]["hour"]) == ("weekly", 4)


def test_the_account_needs_the_key(fake: FakeVultr, account: Account) -> None:
    found = VultrApi(api_url=fake.url, api_key=account.api_key).get("/account")
    assert found is not None
    assert {"name", "email", "acls", "balance"} <= found["account"].keys()
    with pytest.raises(VultrError, match="GET /v2/account answered 401"):
        VultrApi(api_url=fake.url, api_key="X" * 36).get("/account")
