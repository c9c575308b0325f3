"""The Vultr pre-flight (stack.vultr_preflight) against the local fake Vultr: the key, apiUrl, and what the
catalog lacks, a problem where a VM is to be made with it and a warning where the stack's VM runs with it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.fakes.vultr import Account, FakeVultr, running
from harness.stack import SECRET_VALUES, base_settings, secret_keys, to_raw
from providers.vultr import api
from providers.vultr.api import VultrApi
from settings import LoadedSettings, load_settings
from stack.service_check import ServiceCheck
from stack.vultr_preflight import check_vultr

DEBIAN = "Debian 12 x64 (bookworm)"
BULLSEYE = "Debian 11 x64 (bullseye)"
NO_VM = None


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVultr]:
    monkeypatch.setattr(api, "BACKOFF", 0.05)
    with running(FakeVultr()) as server:
        yield server


@pytest.fixture
def account(fake: FakeVultr) -> Account:
    return fake.add_account()


def stack(api_url: str, key: str, **vultr: Any) -> LoadedSettings:
    doc = base_settings()
    doc["datastore"] = {
        "type": "vultr",
        "vultr": {"region": "ams", "allowedSources": ["203.0.113.7/32"], "apiUrl": api_url, **vultr},
    }
    doc["vultrApiKey"] = key
    return load_settings(to_raw(doc), secret_keys({"vultrApiKey"}))


def check(loaded: LoadedSettings, recorded: str | None = NO_VM) -> ServiceCheck:
    return check_vultr(loaded.settings, loaded.credentials, lambda: recorded)


def vm(fake: FakeVultr, account: Account, os: str = DEBIAN, region: str = "ams") -> str:
    """A VM at Vultr, as the stack's last update made it."""
    client = VultrApi(api_url=fake.url, api_key=account.api_key, timeout=5)
    body = {"region": region, "plan": "vc2-1c-1gb", "os_id": client.os_id(os), "label": "db", "hostname": "db"}
    found: str = client.post("/instances", body)["instance"]["id"]
    return found


def test_a_good_key_and_a_catalog_that_has_everything_pass(fake: FakeVultr, account: Account) -> None:
    assert check(stack(fake.url, account.api_key)) == ServiceCheck()


def test_a_refused_key_stays_a_problem_when_the_catalog_cannot_be_reached(fake: FakeVultr) -> None:
    fake.fail_next(503, times=3, method="GET", path="/v2/regions")  # every try of the preview's client
    found = check(stack(fake.url, "NOT" + SECRET_VALUES["vultrApiKey"]))
    assert [problem.split(": ")[0] for problem in found.problems] == ["ephemeros:vultrApiKey"]
    assert "Vultr refuses the key: Vultr API: GET /v2/account answered 401" in found.problems[0]
    assert len(found.warnings) == 1
    assert "could not be asked whether region, plan and os are right" in found.warnings[0]


@pytest.mark.parametrize("status", [400, 404, 405])
def test_another_4xx_on_the_account_names_the_api_url(fake: FakeVultr, account: Account, status: int) -> None:
    fake.fail_next(status, method="GET", path="/v2/account", error="Not found.")
    found = check(stack(fake.url, account.api_key))
    assert len(found.problems) == 1
    assert found.problems[0].startswith(
        f"ephemeros:datastore.vultr.apiUrl: Vultr API: GET /v2/account answered {status}"
    )
    assert f"{fake.url} does not answer as Vultr's API does" in found.problems[0]
    assert found.warnings == ()
    assert not fake.requests_to("GET", "/v2/os"), "nothing more is asked of what is not Vultr's API"


def test_an_api_url_with_a_path_vultr_does_not_serve_is_a_problem(fake: FakeVultr, account: Account) -> None:
    found = check(stack(f"{fake.url}/proxy", account.api_key))
    assert [problem.split(": ")[0] for problem in found.problems] == ["ephemeros:datastore.vultr.apiUrl"]
    assert "GET /proxy/v2/account answered 404" in found.problems[0]


def test_a_403_on_the_account_is_a_key_accepted(fake: FakeVultr, account: Account) -> None:
    fake.fail_next(403, method="GET", path="/v2/account")  # a user without the billing permission
    assert check(stack(fake.url, account.api_key)) == ServiceCheck()


def test_a_retired_image_is_a_problem_when_a_vm_is_to_be_made(fake: FakeVultr, account: Account) -> None:
    fake.retire_os(DEBIAN)
    found = check(stack(fake.url, account.api_key), recorded=NO_VM)
    assert [problem.split(": ")[0] for problem in found.problems] == ["ephemeros:datastore.vultr.os"]
    assert found.warnings == ()


def test_a_retired_image_the_vm_runs_is_a_warning(fake: FakeVultr, account: Account) -> None:
    made = vm(fake, account)
    fake.retire_os(DEBIAN)
    found = check(stack(fake.url, account.api_key), recorded=made)
    assert found.problems == ()
    (warning,) = found.warnings
    assert warning.startswith("datastore.vultr.os: Vultr offers no operating system 'Debian 12 x64 (bookworm)'")
    assert "The datastore VM, which runs with it, runs on; but no new VM could be made so" in warning


def test_a_retired_image_is_a_problem_when_the_recorded_vm_is_gone(fake: FakeVultr, account: Account) -> None:
    made = vm(fake, account)
    fake.remove_instance(made)
    fake.retire_os(DEBIAN)
    found = check(stack(fake.url, account.api_key), recorded=made)
    assert [problem.split(": ")[0] for problem in found.problems] == ["ephemeros:datastore.vultr.os"]


def test_a_retired_image_the_vm_does_not_run_is_a_problem(fake: FakeVultr, account: Account) -> None:
    made = vm(fake, account, os=BULLSEYE)  # the setting changes what a new VM is made with
    fake.retire_os(DEBIAN)
    found = check(stack(fake.url, account.api_key), recorded=made)
    assert [problem.split(": ")[0] for problem in found.problems] == ["ephemeros:datastore.vultr.os"]
    assert found.warnings == ()


def test_a_plan_not_offered_where_the_vm_runs_is_a_problem_for_the_vm(fake: FakeVultr, account: Account) -> None:
    made = vm(fake, account)
    found = check(stack(fake.url, account.api_key, plan="vhf-1c-1gb"), recorded=made)  # a change in place
    assert [problem.split(": ")[0] for problem in found.problems] == ["ephemeros:datastore.vultr.plan"]


def test_with_a_refused_key_the_vm_cannot_be_asked_after(fake: FakeVultr, account: Account) -> None:
    made = vm(fake, account)
    fake.retire_os(DEBIAN)
    found = check(stack(fake.url, "NOT" + account.api_key[3:]), recorded=made)
    assert [problem.split(": ")[0] for problem in found.problems] == ["ephemeros:vultrApiKey"]
    (warning,) = found.warnings
    assert "could not be asked (Vultr refuses the key)" in warning
    fresh = check(stack(fake.url, "NOT" + account.api_key[3:]), recorded=NO_VM)  # a VM is to be made: every problem
    assert [problem.split(": ")[0] for problem in fresh.problems] == [
        "ephemeros:vultrApiKey",
        "ephemeros:datastore.vultr.os",
    ]


def test_the_recorded_vm_is_asked_for_only_when_the_catalog_lacks_something(fake: FakeVultr, account: Account) -> None:
    asked: list[bool] = []

    def recorded() -> str | None:
        asked.append(True)
        return None

    loaded = stack(fake.url, account.api_key)
    assert check_vultr(loaded.settings, loaded.credentials, recorded) == ServiceCheck()
    assert asked == []
