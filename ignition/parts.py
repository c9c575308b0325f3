"""What a node's config is made of, shared by ignition.render and the modules of opt-in features it adds: the
readable form of a file and a unit, their modes, and the templates they are rendered from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

from base import node_layout as L
from base.templating import Templates

TEMPLATES = Templates(Path(__file__).parent / "templates", L=L)
MODE_CONFIG = 0o644
MODE_PRIVATE = 0o600
MODE_EXECUTABLE = 0o755


class File(TypedDict, total=False):
    mode: int
    text: str  # written as it is
    url: str  # or downloaded at first boot, and checked against sha256
    sha256: str


class Unit(TypedDict, total=False):
    enabled: bool
    text: str
    mask: bool


def render_template(name: str, **values: Any) -> str:
    return TEMPLATES.render(name, **values)
