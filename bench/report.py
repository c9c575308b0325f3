"""What every benchmark prints and keeps: a Markdown row of runs with their median, and the report under build/bench."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from typing import Any

from harness.stack import REPO


def median_row(label: str, runs: Sequence[float]) -> str:
    """`| label | median | run, run, ... |`, in seconds to one decimal."""
    return f"| {label} | {statistics.median(runs):.1f} | {', '.join(f'{s:.1f}' for s in runs)} |"


def write_report(name: str, report: dict[str, Any]) -> None:
    """Keep `report` as build/bench/<name>.json and say where."""
    out = REPO / f"build/bench/{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(REPO)}")
