"""Debian's Ignition tools: `ignition-validate`, and the `ignition` binary applying a config to a scratch root.

The Debian package ships the binary only inside its dracut module. It relabels what it writes for SELinux
with the real `setfiles` (package policycoreutils), so the scratch root holds an empty file_contexts policy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

IGNITION = Path("/usr/lib/dracut/modules.d/30ignition/ignition")


def require_tools() -> None:
    missing = [str(p) for p in (IGNITION,) if not p.exists()]
    missing += [t for t in ("ignition-validate", "setfiles") if shutil.which(t, path=_path()) is None]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: run `make setup-test` (Debian: ignition policycoreutils)")


def _path() -> str:
    return os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ignition-validate", str(config)], capture_output=True, text=True, check=False)


@dataclass
class Applied:
    root: Path
    returncode: int
    log: str


def scratch_root(root: Path) -> None:
    """The little of a Flatcar root that Ignition's files stage reads: account databases and SELinux config."""
    etc = root / "etc"
    (etc / "selinux/targeted/contexts/files").mkdir(parents=True)
    (etc / "selinux/config").write_text("SELINUX=permissive\nSELINUXTYPE=targeted\n")
    (etc / "selinux/targeted/contexts/files/file_contexts").write_text("")
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\nusers:x:100:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\nusers:*::\n")
    (root / "home").mkdir()


def apply(config: Path, workdir: Path) -> Applied:
    """Run Ignition's fetch-offline then files stages for `config` into a new scratch root under `workdir`."""
    root, run = workdir / "root", workdir / "run"
    run.mkdir(parents=True)
    scratch_root(root)
    common = [
        "-platform",
        "file",
        "-root",
        str(root),
        "-config-cache",
        str(run / "ignition.json"),
        "-state-file",
        str(run / "state"),
        "-log-to-stdout",
    ]
    env = {**os.environ, "IGNITION_CONFIG_FILE": str(config), "PATH": _path()}
    log = ""
    for stage in (["-stage", "fetch-offline", "-neednet", str(run / "neednet")], ["-stage", "files"]):
        done = subprocess.run([str(IGNITION), *stage, *common], capture_output=True, text=True, env=env, check=False)
        log += done.stdout + done.stderr
        if done.returncode != 0:
            return Applied(root, done.returncode, log)
    return Applied(root, 0, log)
