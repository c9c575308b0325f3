"""A systemd EnvironmentFile's text: KEY="value" lines, each value double-quoted with backslash and quote escaped."""

from __future__ import annotations

from collections.abc import Mapping


def env_value(key: str, value: str) -> str:
    """`value` as it goes between the double quotes of `key`'s line."""
    if "\n" in value:
        raise ValueError(f"{key} holds a newline, which an environment file cannot carry")
    return value.replace("\\", "\\\\").replace('"', '\\"')


def env_file(values: Mapping[str, str]) -> str:
    return "".join(f'{key}="{env_value(key, value)}"\n' for key, value in values.items())
