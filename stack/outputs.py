"""What the stack's last update left, for the checks that run before any resource is declared: its outputs, read
through the engine's stack reference function (`pulumi:pulumi:readStackOutputs`, what a StackReference reads)
asked about this very stack. They are the last completed update's; a new stack has none."""

from __future__ import annotations

from typing import Any

import pulumi

DATASTORE = "datastore"  # the output `__main__` exports the datastore's summary as
READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs"


def last_outputs() -> dict[str, Any]:
    """The outputs of the stack's last update (secrets decrypted: keep them in memory only)."""
    name = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    found = pulumi.runtime.invoke(READ_STACK_OUTPUTS, {"name": name}).value or {}
    return dict(found.get("outputs") or {})


def recorded_datastore_vm() -> str | None:
    """The id of the datastore VM that the stack's last update recorded, if any."""
    from components.datastore import recorded_vm_id

    return recorded_vm_id(last_outputs().get(DATASTORE))
