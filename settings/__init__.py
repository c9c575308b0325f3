"""Stack settings: typed, validated before any resource is created."""

from settings.credentials import CREDENTIAL_KEYS, Credentials
from settings.loader import NAMESPACE, LoadedSettings, SettingsError, load_settings, setting_keys
from settings.model import Node, Settings

__all__ = [
    "CREDENTIAL_KEYS",
    "NAMESPACE",
    "Credentials",
    "LoadedSettings",
    "Node",
    "Settings",
    "SettingsError",
    "load_settings",
    "setting_keys",
]
