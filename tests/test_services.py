"""The services' pre-flight checks (stack.services): the healthchecks key and channels against the local
Healthchecks server, the DNS key and zone against a real BIND 9. Each problem names its key; no secret is shown."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.bind import Bind, bind_server
from harness.fakes.healthchecks import FakeHealthchecks, Project, running
from harness.http_server import serve_directory
from harness.stack import base_settings, secret_keys, to_raw
from settings import LoadedSettings, load_settings
from stack.services import check_dns, check_healthchecks, check_services

ZONE = "lab.ephemeros.test"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stack(heartbeat: dict[str, Any] | None = None, dns: dict[str, Any] | None = None, **secrets: str) -> LoadedSettings:
    doc = base_settings()
    if heartbeat is not None:
        doc["heartbeat"] = heartbeat
    if dns is not None:
        doc["dns"] = {"rfc2136": dns}
    doc.update(secrets)
    return load_settings(to_raw(doc), secret_keys(set(secrets)))


@pytest.fixture
def fake() -> Iterator[FakeHealthchecks]:
    with running(FakeHealthchecks()) as server:
        yield server


@pytest.fixture
def project(fake: FakeHealthchecks) -> Project:
    return fake.add_project(channels=("ops-mail", "oncall"))


def heartbeat(fake: FakeHealthchecks, key: str, channels: str = "*") -> LoadedSettings:
    return stack({"apiUrl": fake.url, "channels": channels}, healthchecksApiKey=key)


def hc_check(loaded: LoadedSettings) -> tuple[tuple[str, ...], tuple[str, ...]]:
    found = check_healthchecks(loaded.settings, loaded.credentials)
    return found.problems, found.warnings


def test_a_good_key_passes_and_the_existing_checks_ping_urls_are_known(
    fake: FakeHealthchecks, project: Project
) -> None:
    loaded = heartbeat(fake, project.api_key)
    assert hc_check(loaded) == ((), ())
    made = fake.create(project, {"name": "node0.lab.ephemeros.test"})[1]
    assert made is not None
    found = check_healthchecks(loaded.settings, loaded.credentials)
    assert found.ping_urls == {"node0.lab.ephemeros.test": f"{fake.url}/ping/{made['uuid']}"}


@pytest.mark.parametrize("which", ["wrong", "read-only"])
def test_a_refused_key_is_a_problem_naming_the_key(fake: FakeHealthchecks, project: Project, which: str) -> None:
    key = "f" * 32 if which == "wrong" else project.read_only_key
    problems, warnings = hc_check(heartbeat(fake, key))
    assert warnings == ()
    assert len(problems) == 1
    assert problems[0].startswith(f"ephemeros:healthchecksApiKey: {fake.url} refused the key: set the project's ")
    assert key not in problems[0]


def test_an_unreachable_service_is_a_warning(project: Project) -> None:
    problems, warnings = hc_check(stack({"apiUrl": f"http://127.0.0.1:{closed_port()}"}, healthchecksApiKey="k" * 32))
    assert problems == ()
    assert len(warnings) == 1
    assert "the API key and heartbeat.channels are not checked, as healthchecks does not answer" in warnings[0]
    assert "k" * 32 not in warnings[0]


def test_an_api_url_that_is_no_healthchecks_server_is_a_problem(fake: FakeHealthchecks, project: Project) -> None:
    problems, _ = hc_check(stack({"apiUrl": fake.url + "/not-here"}, healthchecksApiKey=project.api_key))
    assert len(problems) == 1
    assert problems[0].startswith("ephemeros:heartbeat.apiUrl: healthchecks channels list: GET ")
    assert "answered 404" in problems[0]


def test_channels_with_spaces_around_commas_are_the_projects_channels(fake: FakeHealthchecks, project: Project) -> None:
    loaded = heartbeat(fake, project.api_key, channels=" ops-mail , oncall")
    assert loaded.settings.heartbeat is not None
    assert loaded.settings.heartbeat.channels == "ops-mail,oncall"
    assert hc_check(loaded) == ((), ())


def test_an_unknown_channel_is_refused_naming_the_key_and_listing_the_channels(
    fake: FakeHealthchecks, project: Project
) -> None:
    problems, _ = hc_check(heartbeat(fake, project.api_key, channels="ops-mail, pager"))
    assert problems == (
        "ephemeros:heartbeat.channels: 'pager' is not a channel of the healthchecks project: its channels are "
        "ops-mail (email), oncall (email); name them exactly, separated by commas, or use '*' for all",
    )


# --- DNS ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bind() -> Iterator[Bind]:
    with bind_server(ZONE) as server:
        yield server


def rfc2136(bind: Bind, **changes: Any) -> dict[str, Any]:
    return {"server": bind.address, "port": bind.port, "zone": ZONE, "keyName": bind.key_name, **changes}


def dns_check(bind: Bind, secret: str | None = None, **changes: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    loaded = stack(dns=rfc2136(bind, **changes), dnsTsigSecret=secret or bind.secret)
    found = check_dns(loaded.settings, loaded.credentials)
    return found.problems, found.warnings


def test_a_served_zone_and_a_known_key_pass(bind: Bind) -> None:
    assert dns_check(bind) == ((), ())


def test_a_wrong_secret_names_the_secret(bind: Bind) -> None:
    wrong = base64.b64encode(os.urandom(32)).decode()
    problems, _ = dns_check(bind, wrong)
    assert problems == (
        "ephemeros:dnsTsigSecret: the server knows TSIG key ephemeros-test (hmac-sha256) but the signature does "
        "not match (it answered BADSIG): dnsTsigSecret is not that key's secret",
    )


def test_an_unknown_key_names_the_key(bind: Bind) -> None:
    problems, _ = dns_check(bind, keyName="nobody")
    assert problems[0].startswith("ephemeros:dns.rfc2136.keyName: the server does not know TSIG key nobody")
    problems, _ = dns_check(bind, algorithm="hmac-sha512")
    assert problems[0].startswith("ephemeros:dns.rfc2136.keyName: the server does not know TSIG key ephemeros-test")


def test_a_zone_the_server_does_not_serve_names_the_zone(bind: Bind) -> None:
    problems, _ = dns_check(bind, zone="ephemeros.test")
    assert problems == (
        f"ephemeros:dns.rfc2136.zone: server 127.0.0.1:{bind.port} is not authoritative for zone ephemeros.test: "
        "check dns.rfc2136.zone (the zone as the server serves it) and dns.rfc2136.server; it answered REFUSED "
        "without the SOA",
    )


def test_an_unreachable_server_is_a_warning(bind: Bind) -> None:
    problems, warnings = dns_check(bind, port=closed_port())
    assert problems == ()
    assert len(warnings) == 1
    assert warnings[0].startswith("the DNS key and zone are not checked: no answer from 127.0.0.1:")


def test_an_ipv6_server_in_brackets_is_checked() -> None:
    with bind_server(ZONE, address="::1") as v6:
        assert dns_check(v6, server="[::1]") == ((), ())
        assert dns_check(v6, server="::1", zone="ephemeros.test")[0][0].startswith(
            f"ephemeros:dns.rfc2136.zone: server [::1]:{v6.port} is not authoritative"
        )


def test_every_service_is_checked_in_one_report(fake: FakeHealthchecks, project: Project, bind: Bind) -> None:
    loaded = stack(
        {"apiUrl": fake.url},
        rfc2136(bind, zone="ephemeros.test"),
        healthchecksApiKey="f" * 32,
        dnsTsigSecret=bind.secret,
    )
    found = check_services(loaded.settings, loaded.credentials, previewing=True)
    assert [p.split(":")[1] for p in found.problems] == ["healthchecksApiKey", "dns.rfc2136.zone"]
    assert bind.secret not in "".join(found.problems)


def test_an_api_url_that_serves_a_web_page_is_a_problem_naming_it(tmp_path: Path) -> None:
    """heartbeat.apiUrl pointing at a web site (it answers 200 with HTML) is said to be the wrong address, not a
    traceback."""
    (tmp_path / "api/v3/channels").mkdir(parents=True)
    (tmp_path / "api/v3/channels/index.html").write_text("<html><body>Welcome</body></html>\n")
    with serve_directory(tmp_path) as (url, _):
        problems, warnings = hc_check(stack({"apiUrl": url}, healthchecksApiKey="k" * 32))
    assert warnings == ()
    (problem,) = problems
    assert problem.startswith("ephemeros:heartbeat.apiUrl: healthchecks channels list: GET ")
    assert problem.endswith(
        f"answered 200 with no JSON object (a web page, not the API?): is {url} a healthchecks server's address?"
    )


def test_the_update_run_asks_only_for_the_ping_urls(fake: FakeHealthchecks, project: Project) -> None:
    """`pulumi up` runs the program twice; the channels are checked at its preview, and its update run asks the API
    only for the checks' ping URLs, which the sticks carry."""
    loaded = heartbeat(fake, project.api_key, channels="no-such-channel")
    found = check_healthchecks(loaded.settings, loaded.credentials, previewing=False)
    assert found.problems == ()
    assert fake.requests == [("GET", "/api/v3/checks/")]
    assert check_healthchecks(loaded.settings, loaded.credentials).problems  # a preview says so
