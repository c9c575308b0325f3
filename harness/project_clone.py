"""A fresh clone of this checkout, on which `make` runs as a new user's would: every file git tracks, as it is in
the working tree (uncommitted changes included), committed into a new repository, with this checkout's virtualenv
and tools linked in (`make setup-test` made them; the copies keep their modification times, so that make sees them
as up to date, as it would in the checkout)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness.pulumi_project import make_env, project_defaults_env
from harness.stack import REPO

GIT_USER = ("-c", "user.name=ephemeros tests", "-c", "user.email=tests@ephemeros.invalid")


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *GIT_USER, *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


class ProjectClone:
    """The clone in `directory`; `env` is this environment with the project's defaults (no backend or passphrase
    chosen), to which a test adds what a user would export."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True)
        listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO)
        for name in filter(None, listed.split("\0")):
            source = REPO / name
            if source.is_file():  # a file deleted in the working tree is not part of the clone
                (directory / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, directory / name, follow_symlinks=False)
        for linked in (".venv", ".tools"):
            (directory / linked).symlink_to((REPO / linked).resolve())
        _git("init", "-q", "-b", "main", cwd=directory)
        _git("add", "-A", cwd=directory)
        _git("commit", "-q", "-m", "the checkout under test", cwd=directory)
        self.env = project_defaults_env()

    def make(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        """`make <args>` in the clone (the caller checks the return code)."""
        return subprocess.run(
            ["make", *args],
            cwd=self.dir,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def exports(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """What `eval "$(make -s env)"` sets in a shell with `env` (default: the project's defaults)."""
        return make_env(env or self.env, cwd=self.dir)

    def pulumi(
        self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`pulumi <args>` in a shell that ran `eval "$(make -s env)"` (the caller checks the return code)."""
        shell = env or self.env
        return subprocess.run(
            ["pulumi", *args, "--non-interactive"],
            cwd=self.dir,
            env=shell | self.exports(shell),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    def git_status(self) -> str:
        """What `git status` says changed: the files git tracks that were changed, and new files it does not ignore."""
        return _git("status", "--porcelain", cwd=self.dir)
