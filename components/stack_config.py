"""Read the running stack's configuration and validate it before any resource is declared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime.config as runtime_config

from bootmedia.bootloader import BootFiles, BootloaderError, check_bootloader
from settings import NAMESPACE, LoadedSettings, Settings, SettingsError, load_settings


def raw_stack_config() -> tuple[dict[str, Any], set[str]]:
    """Every config value of this stack by full key, and the keys that are secrets."""
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
        raise pulumi.RunError(str(error)) from None
    for warning in loaded.warnings:
        pulumi.log.warn(warning)
    return loaded


def check_boot_files(settings: Settings, project_dir: Path) -> BootFiles:
    """The boot programs the sticks are built from, checked before any resource is declared."""
    try:
        return check_bootloader(settings.bootloader, project_dir)
    except BootloaderError as error:
        raise pulumi.RunError(str(error)) from None


def check_dns_updater(settings: Settings, project_dir: Path) -> Path:
    """The RFC 2136 updater that nodes on DHCP download, checked before any resource is declared."""
    rfc2136 = settings.dns.rfc2136 if settings.dns is not None else None
    if rfc2136 is None:
        raise ValueError("only nodes that keep RFC 2136 records need the updater")
    path = project_dir / rfc2136.updater
    if not path.is_file() or not _is_elf(path):
        raise pulumi.RunError(
            f"ephemeros:dns.rfc2136.updater: {path} is missing or not a program: run `make up` (which builds it "
            "from nodetools/dnsupdate), or name a static x86_64 build of it"
        )
    return path


def _is_elf(path: Path) -> bool:
    with path.open("rb") as program:
        return program.read(4) == b"\x7fELF"
