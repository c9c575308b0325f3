"""Run the real Pulumi engine on a copy of this project, with its own file backend, passphrase and stack.

The environment comes from `make -s env`, the same one `make up` uses, so the tests exercise the project's own
settings (its engine on PATH, no update checks, no plugin downloads); only the backend and passphrase differ.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from harness.stack import REPO

PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "requirements.txt")
NOT_PROGRAM = ("tests", "bench", "harness", "status")  # packages a stack never imports
# How Pulumi marks a secret value, in mocks' inputs and in `stack export --show-secrets` (its "special signature").
SECRET_SIG, SECRET_MARKER = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"


# What a user chooses through the environment instead of the project's defaults (README: A team's stack).
CHOSEN_BY_ENVIRONMENT = (
    "PULUMI_BACKEND_URL",
    "PULUMI_CONFIG_PASSPHRASE",
    "PULUMI_CONFIG_PASSPHRASE_FILE",
    "EPHEMEROS_ENV_OF",
)


# Set where the tests run, and not on a user's machine: with it, every process the engine starts (the program, the
# dynamic providers) compiled the project's modules anew, ~0.6 s of CPU per `pulumi up`, hundreds of times a run.
NOT_ON_A_USERS_MACHINE = ("PYTHONDONTWRITEBYTECODE",)


def users_env() -> dict[str, str]:
    """This environment as on a user's machine."""
    return {key: value for key, value in os.environ.items() if key not in NOT_ON_A_USERS_MACHINE}


def project_defaults_env() -> dict[str, str]:
    """This environment (as on a user's machine) without what would choose another backend or passphrase than the
    project's defaults."""
    return {key: value for key, value in users_env().items() if key not in CHOSEN_BY_ENVIRONMENT}


def make_env(env: dict[str, str] | None = None, cwd: Path = REPO) -> dict[str, str]:
    """The exports printed by `make -s env` in `cwd`, in `env` (default: the project's defaults)."""
    out = subprocess.run(
        ["make", "-s", "env"], cwd=cwd, env=env or project_defaults_env(), capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r'^export (\w+)="(.*)"$', out, re.MULTILINE))


def program_packages() -> list[Path]:
    """Top-level packages the program may import: every package but the tests and benchmarks."""
    return [
        p.parent
        for p in sorted(REPO.glob("*/__init__.py"))
        if p.parent.name not in NOT_PROGRAM and not p.parent.name.startswith(".")
    ]


class PulumiProject:
    """A copy of the project in `workdir`, on which `pulumi` runs with stack `stack`."""

    def __init__(self, workdir: Path, stack: str) -> None:
        self.dir = workdir
        self.stack = stack
        self.outputs: list[str] = []  # every command's output, to search for leaked secrets
        workdir.mkdir(parents=True, exist_ok=True)
        for name in PROJECT_FILES:
            shutil.copy2(REPO / name, workdir / name)
        for package in program_packages():
            shutil.copytree(package, workdir / package.name, ignore=shutil.ignore_patterns("__pycache__"))
        (workdir / ".venv").symlink_to(REPO / ".venv")
        (workdir / ".tools").mkdir()
        for tools in ("ipxe", "nodetools"):  # where the default settings find the boot programs and node programs
            (workdir / ".tools" / tools).symlink_to(REPO / ".tools" / tools)
        (workdir / "state").mkdir()
        self.env = {
            **users_env(),
            **make_env(),
            "PULUMI_BACKEND_URL": f"file://{workdir / 'state'}?metadata=skip",
            "PULUMI_CONFIG_PASSPHRASE": secrets.token_urlsafe(24),
        }
        self.env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)

    @property
    def stack_file(self) -> Path:
        return self.dir / f"Pulumi.{self.stack}.yaml"

    @property
    def state_file(self) -> Path:
        return self.dir / "state/.pulumi/stacks/ephemeros" / f"{self.stack}.json"

    @property
    def build_dir(self) -> Path:
        return self.dir / "build" / self.stack

    def run(
        self, *args: str, check: bool = True, stdin: str | None = None, record: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `pulumi <args>` on the stack; `record=False` keeps a command that shows secrets out of `outputs`."""
        done = subprocess.run(
            ["pulumi", *args, "--stack", self.stack, "--non-interactive"],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            input=stdin,
            check=False,
            timeout=600,
        )
        if record:
            self.outputs.append(done.stdout + done.stderr)
        if check and done.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def start(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """Start `pulumi <args>` on the stack in the background, its output to `log`."""
        with log.open("wb") as output:
            return subprocess.Popen(
                ["pulumi", *args, "--stack", self.stack, "--non-interactive"],
                cwd=self.dir,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def init(self, settings: dict[str, Any]) -> None:
        """Create the stack with the passphrase provider and write its (non-secret) settings."""
        self.run("stack", "init", "--secrets-provider", "passphrase")
        config = yaml.safe_load(self.stack_file.read_text()) or {}
        config["config"] = {f"ephemeros:{k}": v for k, v in settings.items()}
        self.stack_file.write_text(yaml.safe_dump(config, sort_keys=False))

    def config_document(self) -> dict[str, Any]:
        """The stack's ephemeros settings (secret ones still encrypted), keyed without namespace."""
        config = yaml.safe_load(self.stack_file.read_text())["config"]
        return {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith("ephemeros:")}

    def write_config_document(self, settings: dict[str, Any]) -> None:
        document = yaml.safe_load(self.stack_file.read_text())
        document["config"] = {f"ephemeros:{key}": value for key, value in settings.items()}
        self.stack_file.write_text(yaml.safe_dump(document, sort_keys=False))

    def set_secret(self, key: str, value: str) -> None:
        """`pulumi config set --secret`, reading the value on stdin so it is never on a command line."""
        self.run("config", "set", "--secret", key, stdin=value)

    def preview_steps(self, *args: str) -> list[dict[str, Any]]:
        """The steps of `pulumi preview --json` that change something."""
        plan = json.loads(self.run("preview", "--json", *args).stdout)
        return [step for step in plan["steps"] if step["op"] != "same"]

    def stack_output(self, name: str) -> Any:
        return json.loads(self.run("stack", "output", name, "--json").stdout)

    def resources(self) -> list[dict[str, Any]]:
        exported = json.loads(self.run("stack", "export").stdout)
        resources: list[dict[str, Any]] = exported["deployment"].get("resources") or []
        return resources

    def _secret_outputs(self, type_suffix: str, output: str, part: str = "outputs") -> dict[str, Any]:
        """One secret output (or input, with part="inputs") of every resource of a type, by resource name, read back
        with --show-secrets."""
        exported = json.loads(self.run("stack", "export", "--show-secrets", record=False).stdout)
        results = {
            r["urn"].split("::")[-1]: r[part][output]
            for r in exported["deployment"]["resources"]
            if r["type"].endswith(type_suffix)
        }
        return {name: _revealed(value) for name, value in results.items()}

    def generated_secrets(self) -> dict[str, str]:
        """The RandomSecret results by resource name."""
        return self._secret_outputs(":RandomSecret", "result")

    def private_keys(self) -> dict[str, str]:
        """Each PrivateKey's PEM, by resource name."""
        return self._secret_outputs(":PrivateKey", "pem")

    def stick_secret_files(self) -> dict[str, dict[str, str]]:
        """Each StickImage's secret files (file name -> content), by resource name: its inputs (its outputs keep
        only their digest)."""
        return self._secret_outputs(":StickImage", "secretFiles", part="inputs")


def _revealed(value: Any) -> Any:
    """`value` from an export with --show-secrets, every secret in it (a whole value, or each value of a map)
    replaced by its plaintext: a secret is exported as {<secret signature>: ..., "plaintext": <its JSON>}."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_MARKER:
            return _revealed(json.loads(value["plaintext"]))
        return {key: _revealed(item) for key, item in value.items()}
    return value
