"""k3s's registries.yaml, made on the node from two parts joined as text before k3s starts (ignition/templates/
scripts/registries.sh): the public part from the Ignition (ignition.registries) ends with its `configs:` mapping
open, and the stick's part (bootmedia.secret_files) holds only entries of that mapping. Both write their entries here,
so that they stay in one mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml


def configs_entries(entries: Mapping[str, Any]) -> str:
    """Entries of the `configs` mapping, indented under it."""
    if not entries:
        return ""
    text = yaml.safe_dump(dict(entries), sort_keys=True, default_flow_style=False)
    return "".join(f"  {line}\n" for line in text.splitlines())
