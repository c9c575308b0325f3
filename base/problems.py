"""One error for "here is everything that is wrong", as a single block: a heading, then one problem per line."""

from __future__ import annotations


class Problems(Exception):
    """`problems` are complete sentences naming what is wrong and what to do; all are reported at once."""

    def __init__(self, heading: str, problems: list[str]) -> None:
        """`heading` says where the problems are; "{count}" in it is replaced by their number."""
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{heading.format(count=len(problems))}:\n{lines}")
