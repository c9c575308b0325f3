"""Floor 1, settings: the stack's configuration as typed, validated models (model.py, credentials.py), the rules
across them (rules.py), the plans derived from them (dns_plan.py, heartbeat_plan.py), and the declaration of every
key in Pulumi.yaml and docs/settings.md made from the models (schema.py). Pure: no Pulumi, no I/O."""

from settings.credentials import Credentials, credential_keys
from settings.loader import NAMESPACE, LoadedSettings, SettingsError, load_settings, setting_keys
from settings.model import Node, Settings

__all__ = [
    "NAMESPACE",
    "Credentials",
    "LoadedSettings",
    "Node",
    "Settings",
    "SettingsError",
    "credential_keys",
    "load_settings",
    "setting_keys",
]
