"""Where a stack's artifacts go on the machine that runs Pulumi: build/<stack>/, relative to the project."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from base import node_layout as L


@dataclass(frozen=True)
class BuildDir:
    """A stack's build directory and what goes where in it."""

    root: Path  # e.g. build/dev

    @property
    def ignition(self) -> Path:
        """Everything served at ignitionBaseUrl: the nodes' configs and boot scripts, and the programs they download."""
        return self.root / "ignition"

    def ignition_config(self, hostname: str) -> Path:
        return self.ignition / L.config_name(hostname)

    def boot_script(self, hostname: str) -> Path:
        return self.ignition / L.boot_script_name(hostname)

    def stick_image(self, hostname: str) -> Path:
        return self.root / "sticks" / f"{hostname}.img"
