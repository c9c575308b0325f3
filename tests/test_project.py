"""Facts kept in more than one file agree: generated declarations, config keys, engine versions."""

from __future__ import annotations

import re

import yaml

from harness.stack import REPO
from settings import credential_keys, setting_keys
from settings.schema import generated_files


def project_config() -> dict[str, dict[str, object]]:
    config: dict[str, dict[str, object]] = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]
    return config


def test_generated_files_are_current() -> None:
    for path, text in generated_files().items():
        assert path.read_text() == text, f"{path.name} is stale: run `make generate` and commit it"


def test_pulumi_yaml_declares_exactly_the_settings() -> None:
    assert sorted(project_config()) == sorted(setting_keys())


def test_every_declared_key_has_a_type_and_description() -> None:
    for key, spec in project_config().items():
        assert spec.get("type") in ("string", "object", "array"), key
        assert len(str(spec.get("description", ""))) > 20, key


def test_credentials_are_described_as_secret_and_default_to_unset() -> None:
    config = project_config()
    for key in credential_keys():
        assert str(config[key]["description"]).startswith("(secret)"), key
        assert config[key]["default"] in ("", {}), key


def test_optional_settings_default_to_off() -> None:
    required = {key for key, spec in project_config().items() if "default" not in spec}
    assert required == {"clusterName", "domain", "ignitionBaseUrl", "k3s", "nodes", "sshKeys"}


def pinned(pattern: str, path: str) -> str:
    match = re.search(pattern, (REPO / path).read_text(), re.MULTILINE)
    assert match, f"no match for {pattern} in {path}"
    return match.group(1)


def test_engine_is_pinned_to_the_python_sdk_version() -> None:
    sdk = pinned(r"^pulumi==([\d.]+)", "requirements.txt")
    assert pinned(r"github.com/pulumi/pulumi/pkg/v3 v([\d.]+)\b", "engine/cli/go.mod") == sdk
    assert pinned(r"github.com/pulumi/pulumi/sdk/v3 v([\d.]+)\b", "engine/cli/go.mod") == sdk
    assert pinned(r"github.com/pulumi/pulumi/sdk/v3 v([\d.]+)\b", "engine/langhost/go.mod") == sdk
