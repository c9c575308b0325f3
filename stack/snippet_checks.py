"""Pre-flight checks of the user's snippets (settings.snippets): each is a valid Ignition 3.3 fragment by Debian's
`ignition-validate` (package ignition, which `make up` installs), and none writes a path or unit that the program
writes itself on a node it applies to. Each problem names the snippet's key."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from ignition.render import node_config
from ignition.snippets import Owned, conflicts, fragment, node_snippets
from settings import NAMESPACE
from settings.credentials import Credentials
from settings.model import Settings
from settings.node_plan import node_plan

VALIDATE = "ignition-validate"
ANY_SHA256 = "0" * 64  # the programs nodes download: their pins change no path


def _owned(settings: Settings) -> dict[str, Owned]:
    """Per node, what its config writes, with every optional part that depends on a credential counted in."""
    charts = tuple(chart.name for chart in settings.addons.charts if not settings.kubernetes.manage)
    owned = {}
    for node in settings.nodes:
        plan = dataclasses.replace(
            node_plan(settings, node, Credentials()),
            log_export=True,
            addon_secret_values=charts if node.role == "server" else (),
        )
        config = node_config(settings, plan, dns_updater_sha256=ANY_SHA256, etcd_rejoin_sha256=ANY_SHA256)
        owned[node.hostname] = Owned({*config["files"], *config["links"]}, set(config["units"]))
    return owned


def _validate(key: str, text: str, directory: Path) -> list[str]:
    path = directory / "snippet.ign"
    path.write_text(json.dumps(fragment(text)))
    done = subprocess.run([VALIDATE, str(path)], capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return []
    errors = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return [f"{NAMESPACE}:{key}: is not a valid Ignition 3.3 fragment: {'; '.join(errors)}"]


def snippet_problems(settings: Settings) -> list[str]:
    snippets = {s.key: s.text for node in settings.nodes for s in node_snippets(settings, node)}
    if not snippets:
        return []
    if shutil.which(VALIDATE) is None:
        return [
            f"{NAMESPACE}:snippets: checking the snippets needs {VALIDATE}, which is not installed: run `make up` "
            "(which installs Debian's ignition package), or apt-get install ignition"
        ]
    problems = []
    with tempfile.TemporaryDirectory(prefix="ephemeros-snippets-") as directory:
        for key, text in snippets.items():
            problems += _validate(key, text, Path(directory))
    return problems + conflicts(settings, _owned(settings))
