"""One error for "here is everything that is wrong", as a single block: a heading, then one problem per line."""

from __future__ import annotations


class Problems(Exception):
    """`problems` are complete sentences naming what is wrong and what to do; all are reported at once."""

    def __init__(self, heading: str, problems: list[str]) -> None:
        """`heading` says where the problems are; "{count}" in it is replaced by their number."""
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{heading.format(count=len(problems))}:\n{lines}")


def shown_once(message: str) -> str:
    """`message` for pulumi.log, so that the engine shows it once. Pulumi's progress display repeats the first line
    of a resource's latest diagnostic on that resource's row each time it prints the row (twice in a preview: when
    the diagnostic arrives, and when the row's step does), then prints the whole message under Diagnostics; a message
    that starts on its second line leaves the rows only the "warning:" or "error:" and is printed once, whole."""
    return f"\n{message}"
