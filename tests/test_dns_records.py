"""DNS records over RFC 2136 against a real BIND 9: the DnsRecord provider, and the nodes' own updater."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

from harness.bind import Bind, bind_server
from harness.stack import REPO
from providers.dns_record import DnsRecordProvider, DnsUpdateError

ZONE = "lab.ephemeros.test"
UPDATER = REPO / ".tools/nodetools/ephemeros-dnsupdate"


@pytest.fixture(scope="module")
def bind() -> Iterator[Bind]:
    with bind_server(ZONE) as server:
        yield server


def outs(result: CreateResult | UpdateResult | ReadResult) -> dict[str, Any]:
    assert result.outs is not None
    return result.outs


def props(bind: Bind, name: str, values: list[str], ttl: int = 300, **changes: Any) -> dict[str, Any]:
    return {
        "server": bind.address,
        "port": bind.port,
        "zone": ZONE,
        "keyName": bind.key_name,
        "algorithm": bind.algorithm,
        "secret": bind.secret,
        "name": name,
        "type": "A",
        "values": values,
        "ttl": ttl,
        **changes,
    }


def test_create_update_refresh_delete(bind: Bind) -> None:
    provider = DnsRecordProvider()
    name = f"node1.{ZONE}"
    created = provider.create(props(bind, name, ["192.168.50.11"]))
    assert created.id == f"{name}/A"
    assert bind.dig(name) == ["192.168.50.11"]

    news = props(bind, name, ["192.168.50.12", "192.168.50.13"], ttl=120)
    diff = provider.diff(created.id, outs(created), news)
    assert diff.changes is True
    assert diff.replaces == []  # new addresses and TTL: updated in place
    updated = provider.update(created.id, outs(created), news)
    assert bind.dig(name) == ["192.168.50.12", "192.168.50.13"]
    assert provider.diff(created.id, outs(updated), news).changes is False

    read = provider.read(created.id, outs(updated))
    assert read.id == created.id
    assert outs(read)["values"] == ["192.168.50.12", "192.168.50.13"]
    assert outs(read)["ttl"] == 120

    provider.delete(created.id, outs(updated))
    assert bind.dig(name) == []
    assert provider.read(created.id, outs(updated)).id is None


def test_refresh_notices_a_change_made_out_of_band(bind: Bind) -> None:
    provider = DnsRecordProvider()
    name = f"node2.{ZONE}"
    created = provider.create(props(bind, name, ["192.168.50.21"]))
    bind.nsupdate(f"update delete {name}. A\nupdate add {name}. 60 A 10.9.9.9")
    read = provider.read(created.id, outs(created))
    assert outs(read)["values"] == ["10.9.9.9"]
    assert outs(read)["ttl"] == 60
    assert provider.diff(created.id, outs(read), props(bind, name, ["192.168.50.21"])).changes is True

    bind.nsupdate(f"update delete {name}. A")
    assert provider.read(created.id, outs(created)).id is None


def test_a_renamed_record_is_replaced(bind: Bind) -> None:
    provider = DnsRecordProvider()
    olds = outs(provider.create(props(bind, f"node3.{ZONE}", ["192.168.50.31"])))
    diff = provider.diff("x", olds, props(bind, f"node4.{ZONE}", ["192.168.50.31"]))
    assert diff.replaces == ["name"]


def test_a_wrong_key_is_refused_with_a_clear_error(bind: Bind) -> None:
    wrong = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(
        DnsUpdateError, match=r"DNS record node9\.lab\.ephemeros\.test A: the server refused the TSIG key"
    ) as raised:
        DnsRecordProvider().create(props(bind, f"node9.{ZONE}", ["192.168.50.99"], secret=wrong))
    assert wrong not in str(raised.value)
    assert bind.dig(f"node9.{ZONE}") == []
    with pytest.raises(DnsUpdateError, match="refused the TSIG key"):
        DnsRecordProvider().create(props(bind, f"node9.{ZONE}", ["192.168.50.99"], keyName="unknown-key"))


def test_a_name_outside_the_zone_is_refused(bind: Bind) -> None:
    with pytest.raises(DnsUpdateError, match="NOTZONE"):
        DnsRecordProvider().create(props(bind, "node1.elsewhere.test", ["192.168.50.1"]))


def updater(bind: Bind, secret: str, *record: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(UPDATER),
            "-server",
            f"{bind.address}:{bind.port}",
            "-zone",
            ZONE,
            "-key-name",
            bind.key_name,
            "-ttl",
            "60",
            *record,
        ],
        env={"DNS_TSIG_SECRET": secret, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_nodes_updater_points_a_name_at_an_address(bind: Bind) -> None:
    name = f"primary.{ZONE}"
    done = updater(bind, bind.secret, name, "A", "192.168.50.40")
    assert done.returncode == 0, done.stderr
    assert bind.dig(name) == ["192.168.50.40"]
    assert updater(bind, bind.secret, name, "A", "192.168.50.41").returncode == 0
    assert bind.dig(name) == ["192.168.50.41"]  # replaced, not added


def test_the_nodes_updater_fails_clearly_on_a_wrong_key(bind: Bind) -> None:
    wrong = base64.b64encode(os.urandom(32)).decode()
    done = updater(bind, wrong, f"node8.{ZONE}", "A", "192.168.50.80")
    assert done.returncode == 1
    assert "the server refused the TSIG key" in done.stderr
    assert wrong not in done.stderr + done.stdout
    assert bind.dig(f"node8.{ZONE}") == []
