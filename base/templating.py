"""Text files kept as Jinja templates (units, scripts, boot scripts, cloud-config), rendered with one set of rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined


class Templates:
    """The templates in `directory`; `globals` are names every template may use (e.g. a layout module)."""

    def __init__(self, directory: Path, **globals: Any) -> None:
        self.directory = directory
        self._env = Environment(
            loader=FileSystemLoader(directory),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,  # noqa: S701 -- renders systemd units, shell, iPXE and YAML, not HTML
        )
        self._env.globals.update(globals)

    def render(self, name: str, **values: Any) -> str:
        """Render `name`; every name a template uses must be given (StrictUndefined)."""
        return self._env.get_template(name).render(**values)
