"""What `make` runs with, and what `eval "$(make -s env)"` gives a shell: the project's engine first on PATH (once),
and the backend and passphrase the environment chooses, or else the project's own."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from harness.pulumi_project import make_env, project_defaults_env
from harness.stack import REPO

BUCKET_URL = "s3://team-state?endpoint=s3.eu-central-003.backblazeb2.com&s3ForcePathStyle=true&region=eu-central-003"


def shell(script: str, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return done.stdout


def test_evaluating_make_env_twice_does_not_grow_path() -> None:
    env = project_defaults_env()
    once = shell('eval "$(make -s env)"; printf %s "$PATH"', env)
    twice = shell('eval "$(make -s env)"; eval "$(make -s env)"; printf %s "$PATH"', env)
    assert twice == once
    assert once.split(":")[:2] == [f"{REPO}/.tools/bin", f"{REPO}/.venv/bin"]
    assert once.count(f"{REPO}/.tools/bin") == 1


def test_the_project_backend_and_passphrase_are_the_default() -> None:
    exports = make_env()
    assert exports["PULUMI_BACKEND_URL"] == f"file://{REPO}?metadata=skip"
    assert exports["PULUMI_CONFIG_PASSPHRASE_FILE"] == f"{REPO}/.pulumi-passphrase"


def test_a_backend_and_passphrase_from_the_environment_win() -> None:
    passphrase = "team-passphrase-not-to-be-printed"
    chosen = project_defaults_env() | {"PULUMI_BACKEND_URL": BUCKET_URL, "PULUMI_CONFIG_PASSPHRASE": passphrase}
    out = subprocess.run(["make", "-s", "env"], cwd=REPO, env=chosen, capture_output=True, text=True, check=True)
    exports = make_env(chosen)
    assert exports["PULUMI_BACKEND_URL"] == BUCKET_URL
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in exports  # the environment's passphrase is the one used
    assert passphrase not in out.stdout + out.stderr  # and it is never printed
    # Every target runs with them: the recipes see what `make env` prints.
    seen = subprocess.run(
        [
            "make",
            "-s",
            "--eval",
            "seen:\n\t@echo $$PULUMI_BACKEND_URL; echo $${PULUMI_CONFIG_PASSPHRASE_FILE:-none}",
            "seen",
        ],
        cwd=REPO,
        env=chosen,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert seen == [BUCKET_URL, "none"]


def test_another_checkouts_make_env_does_not_carry_over() -> None:
    """A shell that evaluated another checkout's `make env` holds that checkout's file backend and passphrase file:
    its defaults, which are not this checkout's, and not a choice that should win here."""
    other = "/srv/other-checkout"
    env = project_defaults_env() | {
        "EPHEMEROS_ENV_OF": other,
        "PULUMI_BACKEND_URL": f"file://{other}",
        "PULUMI_CONFIG_PASSPHRASE_FILE": f"{other}/.pulumi-passphrase",
    }
    exports = make_env(env)
    assert exports["PULUMI_BACKEND_URL"] == f"file://{REPO}?metadata=skip"
    assert exports["PULUMI_CONFIG_PASSPHRASE_FILE"] == f"{REPO}/.pulumi-passphrase"
    assert make_env(env | {"PULUMI_BACKEND_URL": BUCKET_URL})["PULUMI_BACKEND_URL"] == BUCKET_URL


def test_the_ci_example_gives_make_the_teams_backend_and_passphrase() -> None:
    """docs/ci-workflow.yml (an example that cannot run here) exports what `make` takes from the environment, from
    the CI service's secrets, and runs `make preview` on pull requests and `make up` on the main branch."""
    workflow = yaml.safe_load((REPO / "docs/ci-workflow.yml").read_text())
    chosen = {"PULUMI_BACKEND_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PULUMI_CONFIG_PASSPHRASE"}
    assert {key: workflow["env"][key] for key in chosen} == {key: f"${{{{ secrets.{key} }}}}" for key in chosen}
    assert set(workflow[True]) == {"pull_request", "push"}  # YAML 1.1 reads the key `on` as true
    steps = {step.get("if"): step.get("run") for step in workflow["jobs"]["pulumi"]["steps"] if "if" in step}
    assert steps == {"github.event_name == 'pull_request'": "make preview", "github.event_name == 'push'": "make up"}


def test_the_engine_writes_no_debug_log_of_its_own() -> None:
    """The engine logs every command to PULUMI_HOME/logs unless it cannot make that directory (Makefile: engine)."""
    env = project_defaults_env() | make_env()
    home = Path(env["PULUMI_HOME"])
    assert (home / "logs").resolve() == Path("/dev/null")
    done = subprocess.run(["pulumi", "stack", "ls", "--all"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "log" not in done.stderr
    assert not list(home.rglob("*.log"))
