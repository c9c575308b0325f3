"""Read the running stack's configuration and validate it before any resource is declared."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import pulumi
import pulumi.runtime.config as runtime_config

from base.problems import shown_once
from settings import NAMESPACE, LoadedSettings, SettingsError, load_settings

# The exit code by which Pulumi's Python exec script tells the language host that the program has already shown
# the user what went wrong, so that the engine adds no "unhandled error" of its own.
EXIT_ERROR_SHOWN = 32


def stop(message: str) -> NoReturn:
    """End the program with `message` as its one error."""
    pulumi.log.error(shown_once(message))
    sys.exit(EXIT_ERROR_SHOWN)


def raw_stack_config() -> tuple[dict[str, Any], set[str]]:
    """Every config value of this stack by full key, and the keys that are secrets.

    The public pulumi.Config reads only keys named in advance; telling a typo from a setting needs every key the
    stack sets, and which are secret, which only the SDK's runtime config module gives.
    """
    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = {k for k in raw if runtime_config.is_config_secret(k)}
    secret |= set(runtime_config.get_config_secret_keys_env())
    return raw, secret


def load_stack_settings() -> LoadedSettings:
    """Validated settings of the running stack; a bad config stops the program with every problem listed."""
    raw, secret = raw_stack_config()
    try:
        loaded = load_settings({k: v for k, v in raw.items() if k.startswith(f"{NAMESPACE}:")}, secret)
    except SettingsError as error:
        stop(str(error))
    warn("the stack configuration works", loaded.warnings)
    return loaded


def warn(what: str, warnings: Sequence[str]) -> None:
    """`warnings` as one block, only while previewing (`pulumi up` previews first, then runs the program again), and
    kept off the progress rows: so that each is shown once."""
    if warnings and pulumi.runtime.is_dry_run():
        lines = "\n".join(f"  - {warning}" for warning in warnings)
        pulumi.log.warn(shown_once(f"{what}, with {len(warnings)} warning(s):\n{lines}"))
