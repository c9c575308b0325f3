"""DNS records over RFC 2136 against a real BIND 9: the DnsRecord provider, and the nodes' own updater."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

from base import node_layout as L
from harness.bind import Bind, bind_server
from harness.dns_responder import unsigned_responder
from harness.stack import REPO, SECRET_VALUES, base_settings, node_named, secret_keys, to_raw
from ignition.render import node_config
from providers.dns_record import DnsRecordProvider, DnsUpdateError
from settings import load_settings
from settings.node_plan import node_plan

ZONE = "lab.ephemeros.test"
UPDATER = REPO / ".tools/nodetools/ephemeros-dnsupdate"


@pytest.fixture(scope="module")
def bind() -> Iterator[Bind]:
    with bind_server(ZONE) as server:
        yield server


def outs(result: CreateResult | UpdateResult | ReadResult) -> dict[str, Any]:
    assert result.outs is not None
    return result.outs


def props_for(port: int) -> dict[str, Any]:
    secret = base64.b64encode(b"a key the responder does not check").decode()
    return {
        "server": "127.0.0.1",
        "port": port,
        "zone": ZONE,
        "keyName": "k",
        "algorithm": "hmac-sha256",
        "secret": secret,
        "name": f"node1.{ZONE}",
        "type": "A",
        "values": ["192.168.50.1"],
        "ttl": 60,
    }


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


BAD_SECRET = (
    r"the server knows TSIG key ephemeros-test\.? \(hmac-sha256\) but the signature does not match \(it answered "
    r"BADSIG\): dnsTsigSecret is not that key's secret"
)
UNKNOWN_KEY = (
    r"the server does not know TSIG key unknown-key\.? \(hmac-sha256\) \(it answered BADKEY\): "
    r"dns\.rfc2136\.keyName and dns\.rfc2136\.algorithm must name a key the server has"
)


def test_a_wrong_key_is_refused_with_a_clear_error(bind: Bind) -> None:
    wrong = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(DnsUpdateError, match=r"DNS record node9\.lab\.ephemeros\.test A: " + BAD_SECRET) as raised:
        DnsRecordProvider().create(props(bind, f"node9.{ZONE}", ["192.168.50.99"], secret=wrong))
    assert wrong not in str(raised.value)
    assert "either" not in str(raised.value)  # the server said which: no guess between four causes
    assert bind.dig(f"node9.{ZONE}") == []
    with pytest.raises(DnsUpdateError, match=UNKNOWN_KEY):
        DnsRecordProvider().create(props(bind, f"node9.{ZONE}", ["192.168.50.99"], keyName="unknown-key"))


def test_a_key_the_zone_does_not_allow_is_told_apart(bind: Bind) -> None:
    other = props(bind, f"node9.{ZONE}", ["192.168.50.99"], keyName=bind.other_key_name, secret=bind.other_secret)
    with pytest.raises(
        DnsUpdateError,
        match=r"REFUSED: the server does not let key .*-other update this name: its "
        r"update policy \(BIND: allow-update or update-policy; Knot: an acl with action update\)",
    ):
        DnsRecordProvider().create(other)
    assert bind.dig(f"node9.{ZONE}") == []


def test_a_zone_the_server_does_not_serve_is_named(bind: Bind) -> None:
    parent = props(bind, f"node9.{ZONE}", ["192.168.50.99"], zone="ephemeros.test")
    with pytest.raises(
        DnsUpdateError, match=r"is not authoritative for zone ephemeros\.test: check dns\.rfc2136\.zone"
    ):
        DnsRecordProvider().create(parent)


def test_an_alias_is_never_overwritten_silently(bind: Bind) -> None:
    name = f"alias.{ZONE}"
    bind.nsupdate(f"update add {name}. 300 CNAME ns.{ZONE}.")  # ns.<zone> has an A record: 127.0.0.1
    with pytest.raises(DnsUpdateError, match=r"alias\.lab\.ephemeros\.test is an alias \(CNAME\)"):
        DnsRecordProvider().create(props(bind, name, ["192.168.50.77"]))
    assert bind.dig(name, "CNAME") == [f"ns.{ZONE}."]
    state = props(bind, name, ["192.168.50.77"])
    assert DnsRecordProvider().read(f"{name}/A", state).id is None  # the target's address is not this record


def test_an_unsigned_answer_is_not_trusted() -> None:
    with unsigned_responder() as port:
        spoofed = {**props_for(port), "name": f"node9.{ZONE}"}
        with pytest.raises(DnsUpdateError, match="not signed"):
            DnsRecordProvider().create(spoofed)


def test_a_name_outside_the_zone_is_refused(bind: Bind) -> None:
    with pytest.raises(DnsUpdateError, match="NOTZONE"):
        DnsRecordProvider().create(props(bind, "node1.elsewhere.test", ["192.168.50.1"]))


def updater(
    bind: Bind, secret: str, *record: str, port: int | None = None, key: str | None = None, zone: str = ZONE
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(UPDATER),
            "-server",
            f"{bind.address}:{port}" if port else bind.endpoint,
            "-zone",
            zone,
            "-key-name",
            key or bind.key_name,
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
    name = f"node7.{ZONE}"
    done = updater(bind, bind.secret, name, "A", "192.168.50.40")
    assert done.returncode == 0, done.stderr
    assert bind.dig(name) == ["192.168.50.40"]
    assert updater(bind, bind.secret, name, "A", "192.168.50.41").returncode == 0
    assert bind.dig(name) == ["192.168.50.41"]  # replaced, not added


def test_the_nodes_updater_fails_clearly_on_a_wrong_key(bind: Bind) -> None:
    wrong = base64.b64encode(os.urandom(32)).decode()
    done = updater(bind, wrong, f"node8.{ZONE}", "A", "192.168.50.80")
    assert done.returncode == 1
    assert re.search(BAD_SECRET, done.stderr), done.stderr
    assert "either" not in done.stderr
    assert wrong not in done.stderr + done.stdout
    unknown = updater(bind, bind.secret, f"node8.{ZONE}", "A", "192.168.50.80", key="unknown-key")
    assert re.search(UNKNOWN_KEY, unknown.stderr), unknown.stderr
    assert bind.dig(f"node8.{ZONE}") == []


def test_the_nodes_updater_tells_a_refused_key_from_a_zone_it_does_not_serve(bind: Bind) -> None:
    refused = updater(bind, bind.other_secret, f"node8.{ZONE}", "A", "192.168.50.80", key=bind.other_key_name)
    assert refused.returncode == 1
    assert "REFUSED: the server does not let key ephemeros-test-other. update this name" in refused.stderr
    parent = updater(bind, bind.secret, f"node8.{ZONE}", "A", "192.168.50.80", zone="ephemeros.test")
    assert parent.returncode == 1
    assert "is not authoritative for zone ephemeros.test." in parent.stderr, parent.stderr


def test_the_nodes_updater_leaves_an_alias_alone(bind: Bind) -> None:
    name = f"alias2.{ZONE}"
    bind.nsupdate(f"update add {name}. 300 CNAME ns.{ZONE}.")
    done = updater(bind, bind.secret, name, "A", "192.168.50.81")
    assert done.returncode == 1
    assert "the name is an alias (CNAME)" in done.stderr
    assert bind.dig(name, "CNAME") == [f"ns.{ZONE}."]


def test_the_nodes_updater_acts_only_on_signed_answers(bind: Bind) -> None:
    with unsigned_responder() as port:
        done = updater(bind, bind.secret, f"node8.{ZONE}", "A", "192.168.50.80", port=port)
    assert done.returncode == 1
    assert "is not signed, so it cannot be trusted" in done.stderr, done.stderr


def test_servers_share_the_primary_record_as_a_set(bind: Bind) -> None:
    """Each healthy server claims the shared name; an unhealthy one releases it; a silent one's claim expires."""
    name = f"primary.{ZONE}"

    def server(address: str, *mode: str) -> None:
        done = updater(bind, bind.secret, *mode, name, "A", address)
        assert done.returncode == 0, done.stderr

    server("192.168.50.1", "-claim")
    server("192.168.50.2", "-claim")
    assert bind.dig(name) == ["192.168.50.1", "192.168.50.2"]  # every healthy server, not the last one
    server("192.168.50.1", "-release")  # server 1 became unhealthy
    assert bind.dig(name) == ["192.168.50.2"]
    server("192.168.50.1", "-claim")
    server("192.168.50.2", "-claim")
    assert bind.dig(name) == ["192.168.50.1", "192.168.50.2"]
    time.sleep(2.2)  # server 1 powers off: it neither claims nor releases any more
    server("192.168.50.2", "-claim", "-lease", "1s")
    assert bind.dig(name) == ["192.168.50.2"]  # its address expired with its claim
    assert bind.dig(f"192-168-50-1._claims.{name}", "TXT") == []


def ddns_script(bind: Bind, hostname: str, tmp: Path, address: str, healthy: bool) -> subprocess.CompletedProcess[str]:
    """Run a server's rendered ddns script, with stand-ins for `ip` (its address) and k3s (its health)."""
    doc = base_settings()
    doc["domain"] = ZONE
    doc["nodes"] = [{"hostname": h, "role": "server"} for h in ("node0", "node1")]
    doc["datastore"] = {"type": "postgres"}
    doc["datastoreEndpoint"] = SECRET_VALUES["datastoreEndpoint"]
    rfc2136 = {"server": bind.address, "port": bind.port, "zone": ZONE, "keyName": bind.key_name}
    doc["dns"] = {"rfc2136": rfc2136, "primaryRecord": "ingress"}
    doc["dnsTsigSecret"] = bind.secret
    loaded = load_settings(to_raw(doc), secret_keys({"datastoreEndpoint", "dnsTsigSecret"}))
    plan = node_plan(loaded.settings, node_named(loaded.settings, hostname), loaded.credentials)
    files = node_config(loaded.settings, plan, dns_updater_sha256="0" * 64)["files"]
    bin_dir = tmp / f"bin-{hostname}"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "ip").write_text(f"#!/bin/sh\necho '192.0.2.1 via 10.0.0.1 dev eth0 src {address} uid 0'\n")
    (bin_dir / "k3s").write_text("#!/bin/sh\nexit 0\n" if healthy else "#!/bin/sh\nexit 1\n")
    for program in bin_dir.iterdir():
        program.chmod(0o755)
    script = (
        files[L.DDNS_SCRIPT]["text"].replace(L.DNS_UPDATER, str(UPDATER)).replace(L.K3S_BINARY, str(bin_dir / "k3s"))
    )
    return subprocess.run(
        ["bash", "-c", script],
        env={"DNS_TSIG_SECRET": bind.secret, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_healthy_servers_claim_the_primary_record_and_an_unhealthy_one_releases_it(bind: Bind, tmp_path: Path) -> None:
    primary = f"ingress.{ZONE}"
    for hostname, address in (("node0", "192.168.50.10"), ("node1", "192.168.50.11")):
        done = ddns_script(bind, hostname, tmp_path, address, healthy=True)
        assert done.returncode == 0, done.stderr
        assert bind.dig(f"{hostname}.{ZONE}") == [address]  # on DHCP: each keeps its own name too
    assert bind.dig(primary) == ["192.168.50.10", "192.168.50.11"]
    done = ddns_script(bind, "node0", tmp_path, "192.168.50.10", healthy=False)
    assert done.returncode == 0, done.stderr
    assert bind.dig(primary) == ["192.168.50.11"]


def test_an_ipv6_name_server_works_for_the_provider_and_the_nodes_updater(tmp_path: Path) -> None:
    """dns.rfc2136.server ::1 (or [::1]): the provider, and the updater as the node's rendered script runs it."""
    with bind_server(ZONE, address="::1") as v6:
        provider = DnsRecordProvider()
        created = provider.create(props(v6, f"node3.{ZONE}", ["192.168.50.30"]))
        assert v6.dig(f"node3.{ZONE}") == ["192.168.50.30"]
        provider.delete(created.id, outs(created))
        done = ddns_script(v6, "node0", tmp_path, "192.168.50.10", healthy=True)
        assert done.returncode == 0, done.stderr
        assert v6.dig(f"node0.{ZONE}") == ["192.168.50.10"]
        assert v6.dig(f"ingress.{ZONE}") == ["192.168.50.10"]


def test_a_record_adopted_by_another_resource_survives_the_old_ones_deletion(bind: Bind) -> None:
    """The cluster was renamed: a new resource writes the same name, then Pulumi deletes the old resource."""
    provider = DnsRecordProvider()
    name = f"node6.{ZONE}"
    old = outs(provider.create(props(bind, name, ["192.168.50.60"])))
    new = outs(provider.create(props(bind, name, ["192.168.50.60"])))
    provider.delete(f"{name}/A", old)
    assert bind.dig(name) == ["192.168.50.60"]
    provider.delete(f"{name}/A", new)
    assert bind.dig(name) == []
    assert bind.dig(f"_ephemeros.{name}", "TXT") == []
