"""What a service's read-only check at preview found: problems (each naming its key), which join the other
pre-flight problems in one block, and warnings. No message holds a secret."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceCheck:
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
