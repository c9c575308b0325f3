"""Image registries: k3s's registries.yaml is made on the node, before k3s starts, from its public part in the
Ignition (applied here by Debian's real `ignition` binary) and its secret part on the stick (secret_files), by the
rendered script run for real. The file it makes matches k3s's documented schema; no credential reaches the public
Ignition, which anyone may read; k3s's embedded mirror is on where k3s reads it (the servers' config)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pulumi
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from base import node_layout as L
from base.build_layout import BuildDir
from bootmedia.bootloader import check_bootloader
from components.cluster import Cluster, ClusterArgs
from harness import ignition_tools
from harness.certificates import new_ca
from harness.generated_secrets import GeneratedSecrets, secret_files
from harness.k3s_mirror import K3sMirror
from harness.stack import REPO, base_settings, node_named, secret_keys, to_raw
from ignition.render import node_config, to_ignition, to_json
from settings import LoadedSettings, SettingsError, load_settings
from settings.credentials import Credentials
from settings.node_plan import node_plan
from tests.mocks import Recorder, mock_test, unwrapped

PASSWORD = "reg-Pa55-7f6e5d"  # a test credential, which must never reach the public Ignition
TOKEN = "ghcr-identity-token-0c9b8a"
CA = new_ca("lan-registry-ca").cert.decode()
GENERATED = GeneratedSecrets(server_token="st", agent_token="at", node_password="np")


# k3s's registries.yaml as documented (docs.k3s.io/installation/private-registry: "mirrors" with "endpoint" and
# "rewrite"; "configs" with "auth" (username, password, auth, identity_token) and "tls" (cert_file, key_file,
# ca_file, insecure_skip_verify)), with the types of k3s's loader (rancher/wharfie pkg/registries): strict, so that
# a key k3s does not know, or a value of the wrong type, fails here rather than being silently ignored by k3s.
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DocMirror(_Strict):
    endpoint: list[str] = []
    rewrite: dict[str, str] = {}

    @field_validator("endpoint")
    @classmethod
    def _urls(cls, endpoints: list[str]) -> list[str]:
        for url in endpoints:  # "The endpoint must be a valid url with host specified."
            parts = urlsplit(url)
            assert parts.scheme in ("http", "https"), url
            assert parts.hostname, url
        return endpoints


class DocAuth(_Strict):
    username: str | None = None
    password: str | None = None
    auth: str | None = None
    identity_token: str | None = None


class DocTls(_Strict):
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False


class DocConfig(_Strict):
    auth: DocAuth | None = None
    tls: DocTls | None = None


class DocRegistries(_Strict):
    mirrors: dict[str, DocMirror] = {}
    configs: dict[str, DocConfig] | None = None


class _UniqueKeys(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (PyYAML would keep the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = {key for key in keys if keys.count(key) > 1}
        assert not repeated, f"keys given twice: {repeated}"
        return super().construct_mapping(node, deep=deep)


def parsed(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeys)  # noqa: S506 -- a SafeLoader


def registries_doc(**changes: Any) -> dict[str, Any]:
    doc = base_settings()
    doc["registries"] = {
        "embeddedMirror": True,
        "mirrors": [
            {
                "registry": "docker.io",
                "endpoints": ["https://mirror.lan:5000"],
                "rewrite": {"^rancher/(.*)": "mirrors/rancher/$1"},
            },
            {"registry": "registry.k8s.io"},  # peers only (the embedded mirror)
            {"registry": "ghcr.io", "endpoints": ["https://mirror.lan:5000/v2/ghcr", "https://ghcr.io"]},
        ],
        "configs": [
            {"host": "mirror.lan:5000", "caCert": CA},
            {"host": "registry.lab.test", "insecureSkipVerify": True},
        ],
    }
    doc["registryAuth"] = {
        "mirror.lan:5000": {"username": "puller", "password": PASSWORD},
        "ghcr.io": {"identityToken": TOKEN},
    }
    doc.update(changes)
    return doc


def load(doc: dict[str, Any]) -> LoadedSettings:
    return load_settings(to_raw(doc), secret_keys({"registryAuth"} & doc.keys()))


EXPECTED = {
    "mirrors": {
        "docker.io": {"endpoint": ["https://mirror.lan:5000"], "rewrite": {"^rancher/(.*)": "mirrors/rancher/$1"}},
        "registry.k8s.io": {},
        "ghcr.io": {"endpoint": ["https://mirror.lan:5000/v2/ghcr", "https://ghcr.io"]},
    },
    "configs": {
        "mirror.lan:5000": {
            "auth": {"username": "puller", "password": PASSWORD},
            "tls": {"ca_file": "/etc/ephemeros/registry-ca/mirror.lan_5000.crt"},
        },
        "registry.lab.test": {"tls": {"insecure_skip_verify": True}},
        "ghcr.io": {"auth": {"identity_token": TOKEN}},
    },
}


def assemble(loaded: LoadedSettings, hostname: str, workdir: Path, k3s: K3sMirror) -> tuple[Path, str]:
    """Apply the node's Ignition to a scratch root, put its stick's file under /secrets, and run the unit's script.
    Returns the root and the public Ignition's JSON."""
    settings = loaded.settings.model_copy(
        update={"k3s": loaded.settings.k3s.model_copy(update={"base_url": k3s.base_url, "sha256": k3s.sha256})}
    )
    node = node_named(settings, hostname)
    config = node_config(settings, node_plan(settings, node, loaded.credentials))
    ignition_json = to_json(to_ignition(config))
    path = workdir / f"{hostname}.ign"
    path.write_text(ignition_json)
    validated = ignition_tools.validate(path)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    applied = ignition_tools.apply(path, workdir / "apply")
    assert applied.returncode == 0, applied.log
    root = applied.root
    secrets = root / L.SECRETS_DIR.lstrip("/")
    secrets.mkdir()
    for name, content in secret_files(settings, node, loaded.credentials, GENERATED).items():
        (secrets / name).write_text(content)
    script = root / L.REGISTRIES_SCRIPT.lstrip("/")
    assert script.stat().st_mode & 0o777 == 0o755
    env = {**os.environ, "EPHEMEROS_ROOT": str(root)}
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    return root, ignition_json


def decoded(config_json: str) -> str:
    """Every string of an Ignition config, data: URLs decoded, as one text to search."""
    texts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            texts.append(value)
            if value.startswith("data:"):
                meta, _, data = value[5:].partition(",")
                texts.append(base64.b64decode(data).decode() if meta.endswith(";base64") else unquote(data))

    walk(json.loads(config_json))
    return "\n".join(texts)


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    ignition_tools.require_tools()


@pytest.mark.parametrize("hostname", ["node0", "node1"])
def test_the_assembled_file_is_k3s_documented_registries_yaml(
    hostname: str, world_readable_tmp: Path, k3s_mirror: K3sMirror
) -> None:
    root, _ = assemble(load(registries_doc()), hostname, world_readable_tmp, k3s_mirror)
    target = root / L.REGISTRIES_FILE.lstrip("/")
    assert target.stat().st_mode & 0o777 == 0o600  # it holds credentials
    document = parsed(target.read_text())
    DocRegistries.model_validate(document)
    assert document == EXPECTED
    assert (root / L.registry_ca_file("mirror.lan:5000").lstrip("/")).read_text() == CA
    assert (root / L.REGISTRIES_PUBLIC.lstrip("/")).stat().st_mode & 0o777 == 0o600
    unit = (root / "etc/systemd/system" / L.REGISTRIES_UNIT).read_text()
    assert f"Before={L.K3S_UNIT}" in unit
    assert f"RequiresMountsFor={L.SECRETS_DIR}" in unit
    presets = (root / "etc/systemd/system-preset/20-ignition.preset").read_text().splitlines()
    assert f"enable {L.REGISTRIES_UNIT}" in presets


def test_without_credentials_the_public_part_is_the_whole_file(world_readable_tmp: Path, k3s_mirror: K3sMirror) -> None:
    doc = registries_doc()
    del doc["registryAuth"]
    root, _ = assemble(load(doc), "node1", world_readable_tmp, k3s_mirror)
    assert not (root / L.SECRETS_DIR.lstrip("/") / L.REGISTRIES_AUTH).exists()
    document = parsed((root / L.REGISTRIES_FILE.lstrip("/")).read_text())
    DocRegistries.model_validate(document)
    assert document == {
        "mirrors": EXPECTED["mirrors"],
        "configs": {
            "mirror.lan:5000": {"tls": {"ca_file": "/etc/ephemeros/registry-ca/mirror.lan_5000.crt"}},
            "registry.lab.test": {"tls": {"insecure_skip_verify": True}},
        },
    }


def test_credentials_only_for_a_registry_with_no_other_setting_still_make_a_valid_file(
    world_readable_tmp: Path, k3s_mirror: K3sMirror
) -> None:
    doc = base_settings()
    doc["registryAuth"] = {"registry.lab.test:5000": {"auth": base64.b64encode(b"u:" + PASSWORD.encode()).decode()}}
    root, _ = assemble(load(doc), "node1", world_readable_tmp, k3s_mirror)
    document = parsed((root / L.REGISTRIES_FILE.lstrip("/")).read_text())
    DocRegistries.model_validate(document)
    assert document["configs"] == {
        "registry.lab.test:5000": {"auth": {"auth": doc["registryAuth"]["registry.lab.test:5000"]["auth"]}}
    }


@pytest.mark.parametrize("hostname", ["node0", "node1", "node2"])
def test_no_registry_credential_in_the_public_ignition(hostname: str) -> None:
    loaded = load(registries_doc())
    node = node_named(loaded.settings, hostname)
    config = node_config(loaded.settings, node_plan(loaded.settings, node, loaded.credentials))
    text = to_json(to_ignition(config))
    public = decoded(text)
    assert "mirror.lan:5000" in public  # the decoding found registries.yaml's public part
    for secret in (PASSWORD, TOKEN, "puller"):
        assert secret not in text
        assert secret not in public, f"a registry credential is in {hostname}'s public Ignition"
    stick = secret_files(loaded.settings, node, loaded.credentials, GENERATED)[L.REGISTRIES_AUTH]
    assert PASSWORD in stick
    assert TOKEN in stick


def test_the_embedded_mirror_is_a_server_setting_and_the_default_endpoint_one_for_every_node() -> None:
    doc = registries_doc()
    doc["registries"]["disableDefaultEndpoint"] = True
    loaded = load(doc)
    for node in loaded.settings.nodes:
        config = node_config(loaded.settings, node_plan(loaded.settings, node, loaded.credentials))
        k3s = yaml.safe_load(config["files"][L.K3S_CONFIG]["text"])
        assert k3s.get("embedded-registry") is (True if node.role == "server" else None)
        assert k3s["disable-default-registry-endpoint"] is True
    off = load(base_settings()).settings
    config = node_config(off, node_plan(off, off.nodes[0], Credentials()))
    assert "embedded-registry" not in yaml.safe_load(config["files"][L.K3S_CONFIG]["text"])
    assert L.REGISTRIES_PUBLIC not in config["files"]
    assert L.REGISTRIES_UNIT not in config["units"]


@pytest.mark.parametrize(
    ("registries", "key", "hint"),
    [
        ({"embeddedMirror": True}, "registries", "an entry with no endpoints is enough"),
        ({"mirrors": [{"registry": "docker.io"}, {"registry": "docker.io"}]}, "registries", "given more than once"),
        ({"mirrors": [{"registry": "https://docker.io"}]}, "registries.mirrors[0].registry", "host[:port]"),
        (
            {"mirrors": [{"registry": "docker.io", "endpoints": ["mirror.lan"]}]},
            "registries.mirrors[0].endpoints[0]",
            "not an http(s) URL",
        ),
        (
            {"mirrors": [{"registry": "docker.io", "rewrite": {"(": "x"}}]},
            "registries.mirrors[0].rewrite",
            "not a regular expression",
        ),
        (
            {"configs": [{"host": "mirror.lan", "caCert": "not a certificate"}]},
            "registries.configs[0].caCert",
            "not a PEM certificate",
        ),
        ({"configs": [{"host": "mirror.lan", "tls": {}}]}, "registries.configs[0].tls", "not a setting here"),
    ],
)
def test_bad_registry_settings_fail_naming_their_key(registries: dict[str, Any], key: str, hint: str) -> None:
    doc = base_settings()
    doc["registries"] = registries
    with pytest.raises(SettingsError) as error:
        load(doc)
    assert f"ephemeros:{key}" in str(error.value)
    assert hint in str(error.value)


@pytest.mark.parametrize(
    "auth",
    [
        {"mirror.lan": {"username": "puller"}},
        {"mirror.lan": {"username": "puller", "password": PASSWORD, "auth": "eHg6eXk="}},
        {"mirror.lan": {"password": PASSWORD, "token": "x"}},
        {"https://mirror.lan": {"username": "puller", "password": PASSWORD}},
    ],
)
def test_bad_registry_credentials_fail_without_showing_them(auth: dict[str, Any]) -> None:
    doc = base_settings()
    doc["registryAuth"] = auth
    with pytest.raises(SettingsError) as error:
        load(doc)
    message = str(error.value)
    assert "ephemeros:registryAuth" in message
    assert PASSWORD not in message
    assert "eHg6eXk=" not in message


def test_registry_credentials_in_plain_text_are_refused() -> None:
    doc = registries_doc()
    with pytest.raises(SettingsError) as error:
        load_settings(to_raw(doc), set())
    assert "ephemeros:registryAuth holds a credential but is stored in plain text" in str(error.value)
    assert PASSWORD not in str(error.value)


def test_registries_anyone_on_the_path_could_answer_are_warned_about() -> None:
    doc = registries_doc()
    doc["registries"]["mirrors"].append({"registry": "quay.io", "endpoints": ["http://mirror.lan:5001"]})
    warnings = load(doc).warnings
    assert any("endpoint http://mirror.lan:5001 is plain http" in w for w in warnings)
    assert any("registries.configs (registry.lab.test): insecureSkipVerify is true" in w for w in warnings)


def make_cluster() -> Cluster:
    loaded = load(registries_doc())
    boot_files = check_bootloader(loaded.settings.bootloader, REPO)
    return Cluster("lab", ClusterArgs(loaded.settings, loaded.credentials, boot_files, BuildDir(Path("build/test"))))


@mock_test
def test_the_program_puts_credentials_on_every_stick_and_none_in_the_ignition(
    recorder: Recorder,
) -> pulumi.Output[Any]:
    cluster = make_cluster()

    def check(_: Any) -> None:
        ignition = recorder.of_type(":IgnitionFile")
        sticks = recorder.of_type(":StickImage")
        assert len(ignition) == len(sticks) == 3
        stick_parts = {
            name.removesuffix("-stick"): unwrapped(i["secretFiles"])[L.REGISTRIES_AUTH] for _, name, i in sticks
        }
        for _, name, inputs in ignition:
            public = decoded(to_json(to_ignition(inputs["config"])))
            assert PASSWORD not in json.dumps(inputs["config"]), name
            assert PASSWORD not in public, name
            # What the node's unit makes of the two parts.
            whole = inputs["config"]["files"][L.REGISTRIES_PUBLIC]["text"] + stick_parts[name.removesuffix("-ignition")]
            assert parsed(whole) == EXPECTED

    return pulumi.Output.all(*(n.stick_image for n in cluster.nodes.values())).apply(check)
