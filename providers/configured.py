"""Credentials as the stack's configuration holds them now, for providers' refresh and delete.

Refresh and delete get only a resource's state, which holds the credential it was last changed with; after the
user rotates it (and sets the new one), the stack's configuration has the current one. The engine hands a dynamic
provider the stack's configuration when it configures it.
"""

from __future__ import annotations

from pulumi.dynamic import ConfigureRequest

from settings import NAMESPACE


def configured_credential(req: ConfigureRequest, setting: str) -> str | None:
    """The stack's current value of credential `setting` (e.g. "healthchecksApiKey"), or None when unset."""
    value = req.config.get(f"{NAMESPACE}:{setting}")
    return value if isinstance(value, str) and value else None
