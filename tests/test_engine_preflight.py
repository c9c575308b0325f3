"""Pre-flight checks under the real engine: what this machine lacks is said at `pulumi preview`, naming the setting
and what to do, before the engine itself would fail on it."""

from __future__ import annotations

import importlib.metadata
import random
import socket
from pathlib import Path

import pytest

from base.node_layout import K3S_API_PORT
from harness.pulumi_project import PulumiProject
from harness.stack import stack_settings

pytestmark = [pytest.mark.engine]


def test_kubernetes_manage_without_the_kubernetes_plugin_says_how_to_install_it(tmp_path: Path) -> None:
    version = importlib.metadata.version("pulumi_kubernetes")
    # The cluster's API answers (so that only the plugin is missing), on an address of loopback's own.
    api = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"  # noqa: S311
    project = PulumiProject(tmp_path / "ephemeros", "preflight")
    project.env["PULUMI_HOME"] = str(tmp_path / "pulumi-home")  # no plugin installed there
    project.init(stack_settings("dev") | {"apiServerAddress": api, "kubernetes": {"manage": True}})
    with socket.socket() as listener:
        listener.bind((api, K3S_API_PORT))
        listener.listen()
        done = project.run("preview", check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert output.count("ephemeros:kubernetes.manage: Pulumi applies the add-ons through the Kubernetes") == 1
    assert f"`pulumi plugin install resource kubernetes v{version}`" in output
    assert "no resource plugin" not in output  # the engine's own error, which names no setting
    assert "Traceback" not in output
