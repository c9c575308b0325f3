"""Snippets: the user's Ignition 3.3 fragments, merged into nodes' configs by Ignition itself (Debian's real
`ignition` binary applies the configs here); checked at preview by Debian's `ignition-validate`, refused when they
write what the program writes, or hold anything credential-looking (they are public)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from base import node_layout as L
from base.build_layout import BuildDir
from harness import ignition_tools
from harness.k3s_mirror import K3sMirror
from harness.stack import REPO, base_settings, node_named, to_raw
from ignition.render import config_digest, node_config, to_ignition, to_json
from settings import LoadedSettings, SettingsError, load_settings
from settings.credentials import Credentials
from settings.node_plan import node_plan
from stack.preflight import PreflightError, check_machine
from stack.snippet_checks import snippet_problems

MOTD = "storage:\n  files:\n    - path: /etc/motd\n      mode: 420\n      contents: {source: 'data:,welcome%0A'}\n"
HELLO = """systemd:
  units:
    - name: hello.service
      enabled: true
      contents: |
        [Unit]
        Description=Say hello
        [Service]
        Type=oneshot
        ExecStart=/usr/bin/echo hello
        [Install]
        WantedBy=multi-user.target
"""
AGENT = """storage:
  directories:
    - path: /var/lib/scratch
      mode: 493
  files:
    - path: /etc/sysctl.d/90-agent.conf
      mode: 420
      contents: {source: 'data:,vm.max_map_count%3D262144%0A'}
"""
NODE2_MOTD = "storage:\n  files:\n    - path: /etc/motd\n      contents: {source: 'data:,node2%20only%0A'}\n"


def load(doc: dict[str, Any]) -> LoadedSettings:
    return load_settings(to_raw(doc), set())


def snippets_doc() -> dict[str, Any]:
    doc = base_settings()
    doc["snippets"] = {"all": [MOTD, HELLO], "agent": [AGENT]}
    doc["nodes"][2]["snippets"] = [NODE2_MOTD]
    return doc


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    ignition_tools.require_tools()


@pytest.mark.parametrize("hostname", ["node0", "node1", "node2"])
def test_ignition_merges_every_nodes_then_the_roles_then_the_nodes_own_snippets(
    hostname: str, tmp_path: Path, world_readable_tmp: Path, k3s_mirror: K3sMirror
) -> None:
    doc = snippets_doc()
    doc = k3s_mirror.serving(doc)
    settings = load(doc).settings
    config = node_config(settings, node_plan(settings, node_named(settings, hostname), Credentials()))
    path = tmp_path / f"{hostname}.ign"
    path.write_text(to_json(to_ignition(config)))
    validated = ignition_tools.validate(path)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert validated.stdout + validated.stderr == ""
    applied = ignition_tools.apply(path, world_readable_tmp)
    assert applied.returncode == 0, applied.log
    root = applied.root

    motd = (root / "etc/motd").read_text()
    assert motd == ("node2 only\n" if hostname == "node2" else "welcome\n")  # the node's own snippet comes last
    assert "ExecStart=/usr/bin/echo hello" in (root / "etc/systemd/system/hello.service").read_text()
    presets = (root / "etc/systemd/system-preset/20-ignition.preset").read_text().splitlines()
    assert "enable hello.service" in presets
    agent = hostname != "node0"
    assert (root / "etc/sysctl.d/90-agent.conf").exists() == agent
    assert (root / "var/lib/scratch").is_dir() == agent
    assert (root / "etc/hostname").read_text() == f"{hostname}\n"  # the program's own files are still there
    assert (root / L.CONFIG_DIGEST.lstrip("/")).read_text() == config_digest(config) + "\n"


def test_a_changed_snippet_is_a_changed_config() -> None:
    doc = snippets_doc()
    before = load(doc).settings
    doc["snippets"]["all"][0] = MOTD.replace("welcome", "hello")
    after = load(doc).settings
    for node in ("node0", "node2"):
        digests = {
            config_digest(node_config(s, node_plan(s, node_named(s, node), Credentials()))) for s in (before, after)
        }
        assert len(digests) == 2  # the node's update check sees it, and asks for a reboot


def test_valid_snippets_pass_the_preflight_checks() -> None:
    assert snippet_problems(load(snippets_doc()).settings) == []


def test_snippets_that_write_what_the_program_writes_are_refused_naming_both() -> None:
    doc = base_settings()
    doc["updates"] = {}
    doc["snippets"] = {
        "server": [
            "storage:\n  files:\n    - path: /etc/rancher/k3s/config.yaml\n      contents: {source: 'data:,'}\n"
        ],
        "agent": ["systemd:\n  units:\n    - name: k3s.service\n      mask: true\n"],
        "all": ["passwd:\n  users:\n    - name: core\n      groups: [docker]\n"],
    }
    doc["nodes"][1]["snippets"] = [
        "storage:\n  links:\n    - path: /opt/bin/ephemeros-heartbeat\n      target: /bin/true\n"
        "  files:\n    - path: /var/run/reboot-required\n      contents: {source: 'data:,'}\n"
    ]
    problems = snippet_problems(load(doc).settings)
    assert problems == [
        "ephemeros:snippets.all[0]: changes the user core, which ephemeros owns on node0, node1, node2: its SSH keys "
        "are sshKeys: set them there",
        "ephemeros:snippets.server[0]: writes /etc/rancher/k3s/config.yaml, which ephemeros owns on node0: use the "
        "setting that changes it (docs/settings.md), or a path of your own",
        "ephemeros:snippets.agent[0]: changes the unit k3s.service, which ephemeros owns on node1, node2: use a unit "
        "of your own, or add a drop-in to it (an entry with only its name and dropins)",
        "ephemeros:nodes[1].snippets[0] (node node1): writes /var/run/reboot-required, which ephemeros owns on "
        "node1: use the setting that changes it (docs/settings.md), or a path of your own",
        "ephemeros:nodes[1].snippets[0] (node node1): writes /opt/bin/ephemeros-heartbeat, which ephemeros owns on "
        "node1: use the setting that changes it (docs/settings.md), or a path of your own",
    ]


PROXY = """systemd:
  units:
    - name: k3s.service
      dropins:
        - name: 20-proxy.conf
          contents: |
            [Service]
            Environment=HTTP_PROXY=http://proxy.lan:3128 NO_PROXY=localhost,10.0.0.0/8
"""


def test_a_drop_in_on_a_unit_of_the_program_is_allowed_and_leaves_the_unit_as_it_was(
    tmp_path: Path, world_readable_tmp: Path, k3s_mirror: K3sMirror
) -> None:
    doc = base_settings()
    doc = k3s_mirror.serving(doc)
    doc["snippets"] = {"all": [PROXY]}
    settings = load(doc).settings
    assert snippet_problems(settings) == []
    config = node_config(settings, node_plan(settings, node_named(settings, "node1"), Credentials()))
    path = tmp_path / "node1.ign"
    path.write_text(to_json(to_ignition(config)))
    applied = ignition_tools.apply(path, world_readable_tmp)
    assert applied.returncode == 0, applied.log
    units = applied.root / "etc/systemd/system"
    assert (units / L.K3S_UNIT).read_text() == config["units"][L.K3S_UNIT]["text"]
    assert "HTTP_PROXY=http://proxy.lan:3128" in (units / f"{L.K3S_UNIT}.d/20-proxy.conf").read_text()


def test_a_drop_in_named_as_the_programs_own_is_refused() -> None:
    doc = base_settings()
    doc["snippets"] = {"server": [PROXY.replace("20-proxy.conf", "ephemeros-proxy.conf")]}
    assert snippet_problems(load(doc).settings) == [
        "ephemeros:snippets.server[0]: writes the drop-in ephemeros-proxy.conf of k3s.service, which ephemeros owns "
        "on node0: give your drop-in a name that does not start with ephemeros-"
    ]


def test_a_snippet_ignition_refuses_is_named_with_ignitions_reason() -> None:
    doc = base_settings()
    doc["snippets"] = {"agent": ["storage:\n  files:\n    - path: etc/relative\n"]}
    (problem,) = snippet_problems(load(doc).settings)
    assert problem.startswith("ephemeros:snippets.agent[0]: is not a valid Ignition 3.3 fragment: ")
    assert "path not absolute" in problem


def test_snippet_problems_come_in_one_block_with_the_other_preflight_problems(tmp_path: Path) -> None:
    doc = base_settings()
    doc["bootloader"] = {"ipxeEfi": "/nonexistent/ipxe.efi"}
    doc["snippets"] = {"all": ["storage:\n  files:\n    - path: /etc/hostname\n"]}
    with pytest.raises(PreflightError) as error:
        check_machine(load(doc).settings, REPO, BuildDir(tmp_path))
    message = str(error.value)
    assert "ephemeros:bootloader.ipxeEfi" in message
    assert "ephemeros:snippets.all[0]: writes /etc/hostname, which ephemeros owns on node0, node1, node2" in message


def test_without_ignition_validate_the_snippets_cannot_be_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    (problem,) = snippet_problems(load(snippets_doc()).settings)
    assert "needs ignition-validate, which is not installed: run `make up`" in problem
    monkeypatch.undo()
    assert snippet_problems(load(base_settings()).settings) == []  # no snippet, nothing to check


def data(text: str) -> str:
    return "data:," + quote(text, safe="")


def file_snippet(source: str, **extra: Any) -> str:
    lines = ["storage:", "  files:", "    - path: /etc/example.conf", f"      contents: {{source: '{source}'}}"]
    lines += [f"      {key}: {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("snippet", "hint"),
    [
        ("passwd:\n  users:\n    - name: ops\n      passwordHash: $6$abc$def\n", "passwd.users[0].passwordHash looks"),
        (file_snippet(data("API_TOKEN=abc123\n")), "its contents set API_TOKEN, which looks like a credential"),
        (
            file_snippet(data("db:\n  password: hunter2\n")),
            "its contents set db.password, which looks like a credential",
        ),
        (file_snippet(data("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n")), "its contents hold a private key"),
        (file_snippet("https://user:pw@files.lan/x.conf"), "has a password in its URL"),
        (
            file_snippet("https://files.lan/x.conf", httpHeaders="[{name: Authorization, value: Bearer xyz}]"),
            "sends a Authorization header",
        ),
        ("kernelArguments:\n  shouldExist: [quiet]\n", "use flatcar.kernelArgs or nodes[].kernelArgs"),
        ("ignition:\n  version: 3.4.0\n", "write it for 3.3.0"),
        ("ignition:\n  config:\n    replace: {source: 'https://x.lan/c.ign'}\n", "throw away the node's config"),
        (
            "ignition:\n  config:\n    merge: [{source: 'https://x.lan/c.ign'}]\n",
            "sets ignition.config.merge, which fetches another config at boot that no check at preview reads",
        ),
        ("- storage\n", "not an Ignition fragment"),
        ("storage: [\n", "is not YAML"),
        ("boot_device: {}\n", "boot_device, which is not an Ignition section"),
    ],
)
def test_bad_snippets_fail_at_preview_naming_their_key(snippet: str, hint: str) -> None:
    for where, key in (("all", "snippets.all[0]"), ("node", "nodes[1].snippets[0] (node node1)")):
        doc = base_settings()
        if where == "all":
            doc["snippets"] = {"all": [snippet]}
        else:
            doc["nodes"][1]["snippets"] = [snippet]
        with pytest.raises(SettingsError) as error:
            load(doc)
        message = str(error.value)
        assert f"ephemeros:{key}: " in message
        assert hint in message
    for secret in ("hunter2", "abc123", "xyz", "b3Bl"):
        assert secret not in message


def test_snippets_that_only_name_where_a_secret_is_are_public() -> None:
    doc = base_settings()
    env = "TOKEN_FILE=/secrets/app-token\nPASSWORD_FILE=$CREDENTIALS_DIRECTORY/pw\nLOG_LEVEL=info\n"
    doc["snippets"] = {"all": [file_snippet(data(env)), file_snippet(data("password_file: /run/pw\n"))]}
    assert len(load(doc).settings.snippets.all) == 2
