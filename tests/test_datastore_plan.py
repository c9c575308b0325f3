"""The datastore's plan and its user data, pure: what the Datastore component is made of, rendered once, and a
digest that tells what the VM was made with without holding a secret."""

from __future__ import annotations

import re
import subprocess
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest
import yaml

from base import datastore_layout as D
from cloudinit import render
from cloudinit.render import KeptSecrets, password_verifier, user_data
from harness.stack import SECRET_VALUES, base_settings, secret_keys, to_raw
from settings import load_settings
from settings.datastore_plan import FirewallRuleSpec, datastore_plan
from settings.model import Settings

KEPT = KeptSecrets(
    server_certificate="-----BEGIN CERTIFICATE-----\nMIIB-certificate\n-----END CERTIFICATE-----\n",
    server_key="-----BEGIN PRIVATE KEY-----\nMIIB-the-secret-key\n-----END PRIVATE KEY-----\n",
    dumps_access_key_id=SECRET_VALUES["dumpsAccessKeyId"],
    dumps_secret_access_key=SECRET_VALUES["dumpsSecretAccessKey"],
    dumps_heartbeat_url="https://hc.example.net/ping/dumps-secret-uuid",
    restore_heartbeat_url="https://hc.example.net/ping/restore-secret-uuid",
)
PASSWORD = "datastorePassword0with0letters0and0digits"
KEY = "-----BEGIN PRIVATE KEY-----\nthe datastore CA key\n-----END PRIVATE KEY-----\n"


def settings(**vultr: Any) -> Settings:
    doc = base_settings()
    doc["heartbeat"] = {"provider": "healthchecks"}
    doc["datastore"] = {
        "type": "vultr",
        "vultr": {"region": "ams", "allowedSources": ["203.0.113.7/32", "198.51.100.0/24"], **vultr},
        "dumps": {"endpoint": "https://s3.eu-central-003.backblazeb2.com", "bucket": "lab-dumps", "prefix": "lab/"},
    }
    credentials = ("vultrApiKey", "healthchecksApiKey", "dumpsAccessKeyId", "dumpsSecretAccessKey")
    doc.update({key: SECRET_VALUES[key] for key in credentials})
    return load_settings(to_raw(doc), secret_keys(set(credentials))).settings


def test_the_plan_names_the_vm_its_rules_and_its_checks() -> None:
    plan = datastore_plan(settings(adminSources=["192.0.2.8/32"], dnsName="db.lab.ephemeros.test", tags=["k3s"]))
    assert (plan.hostname, plan.label, plan.tags) == ("lab-datastore", "ephemeros lab datastore", ("ephemeros", "k3s"))
    assert plan.firewall_rules == (
        FirewallRuleSpec("postgres-203-0-113-7-32", "postgres", 5432, IPv4Network("203.0.113.7/32")),
        FirewallRuleSpec("postgres-198-51-100-0-24", "postgres", 5432, IPv4Network("198.51.100.0/24")),
        FirewallRuleSpec("ssh-192-0-2-8-32", "ssh", 22, IPv4Network("192.0.2.8/32")),
    )
    assert plan.dns_names == ("db.lab.ephemeros.test",)
    assert plan.record is None  # no dns.rfc2136 serves it
    assert plan.dumps_check is not None
    assert plan.restore_check is not None
    assert plan.restore_check.name == "k3s datastore lab restore check (lab.ephemeros.test)"
    assert plan.restore_check.timeout == 7 * 86400


def test_the_document_holds_every_secret_and_passes_cloud_inits_schema(tmp_path: Path) -> None:
    document = user_data(settings()).document(PASSWORD, KEPT)
    assert password_verifier(PASSWORD) in document
    for secret in KEPT.by_name().values():
        for line in secret.splitlines():
            assert line in document
    assert "<ephemeros secret" not in document
    (tmp_path / "user-data").write_text(document)
    schema = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(tmp_path / "user-data")], capture_output=True, text=True
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    parsed = yaml.safe_load(document)
    files = {entry["path"]: entry for entry in parsed["write_files"]}
    assert files[D.DUMPS_ENV]["permissions"] == "0600"
    assert f'RESTORE_CHECK_URL="{KEPT.restore_heartbeat_url}"' in files[D.DUMPS_ENV]["content"]
    assert D.METADATA_ADDRESS in files[D.METADATA_RULES]["content"]
    assert "nftables" in parsed["packages"]
    setup = files[D.SETUP_SCRIPT]["content"]
    assert setup.index(f"systemctl enable --now {D.METADATA_UNIT}") < setup.index("systemctl restart postgresql")
    assert f"systemctl enable --now {D.RESTORE_CHECK}.timer" in setup


def test_the_dump_and_restore_scripts_share_one_copy_of_their_helpers(tmp_path: Path) -> None:
    files = {
        entry["path"]: entry for entry in yaml.safe_load(user_data(settings()).document(PASSWORD, KEPT))["write_files"]
    }
    helpers = []
    for path, url in ((D.DUMP_SCRIPT, "HEARTBEAT_URL"), (D.RESTORE_CHECK_SCRIPT, "RESTORE_CHECK_URL")):
        script = files[path]["content"]
        (tmp_path / "script").write_text(script)
        syntax = subprocess.run(["bash", "-n", str(tmp_path / "script")], capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr
        assert f'ping_url="${{{url}:-}}"' in script  # each script's own check
        found = re.search(r"^ping\(\) \{$.*?^as_postgres\(\) \{$.*?^\}$", script, re.MULTILINE | re.DOTALL)
        assert found is not None, path
        helpers.append(found.group(0))
    assert helpers[0] == helpers[1]
    defining = [
        t.name
        for t in render.TEMPLATES.directory.iterdir()
        if re.search(r"^(ping|as_postgres)\(\)", t.read_text(), re.M)
    ]
    assert defining == ["dumps-helpers.sh"]


def test_the_digest_holds_no_secret_ignores_the_password_and_follows_the_rest() -> None:
    rendered = user_data(settings())
    digest = rendered.digest(KEPT, KEY)
    assert rendered.digest(KEPT, KEY) == digest  # the same inputs, the same digest
    assert user_data(settings(maxConnections=200)).digest(KEPT, KEY) != digest
    rotated = KeptSecrets(**{**KEPT.by_name(), "dumps_secret_access_key": "K003rotated"})
    assert rendered.digest(rotated, KEY) != digest
    # What the digest is taken of: stand-ins, no secret.
    text = rendered._render({})
    assert "<ephemeros secret password_verifier>" in text
    assert "<ephemeros secret server_key>" in text
    assert not any(secret in text for secret in [PASSWORD, *KEPT.by_name().values()])


def test_the_user_data_is_rendered_once_and_the_verifier_derived_once(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered_templates: list[str] = []
    verifiers: list[str] = []
    render_template, derive = render.TEMPLATES.render, render.password_verifier

    def count_render(name: str, **values: Any) -> str:
        rendered_templates.append(name)
        return render_template(name, **values)

    def count_verifier(password: str) -> str:
        verifiers.append(password)
        return derive(password)

    monkeypatch.setattr(render.TEMPLATES, "render", count_render)
    monkeypatch.setattr(render, "password_verifier", count_verifier)
    made = user_data(settings())  # at preview, the program makes this once...
    templates = list(rendered_templates)
    assert templates.count("setup.sh") == 1
    assert templates.count("dump.service") == 3  # one for each schedule
    made.document(PASSWORD, KEPT)  # ...the instance's user data from it...
    made.digest(KEPT, KEY)  # ...and the digest kept in plain state
    assert rendered_templates == templates  # nothing rendered again
    assert verifiers == [PASSWORD]
