"""Render the text files kept as Jinja templates (units, scripts, boot scripts) with one set of rules."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ignition import layout


@cache
def _environment(directory: Path) -> Environment:
    env = Environment(
        loader=FileSystemLoader(directory),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 -- renders systemd units, shell and iPXE scripts, not HTML
    )
    env.globals["L"] = layout
    return env


def render_template(directory: Path, name: str, **values: Any) -> str:
    """Render `name` from `directory`; every name a template uses must be given (StrictUndefined)."""
    return _environment(directory).get_template(name).render(**values)
