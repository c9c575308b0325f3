"""A systemd EnvironmentFile's text: KEY="value" lines, each value double-quoted with backslash and quote escaped."""

from __future__ import annotations

from collections.abc import Mapping


def env_file(values: Mapping[str, str]) -> str:
    lines = []
    for key, value in values.items():
        if "\n" in value:
            raise ValueError(f"{key} holds a newline, which an environment file cannot carry")
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{key}="{escaped}"')
    return "\n".join(lines) + "\n"
