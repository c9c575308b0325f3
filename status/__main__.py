"""`python -m status --stack <stack>` (`make status`): which nodes run an old config, and the order to reboot in.
Exit status 1 when a node's check is down or late (grace), 2 when a source cannot be read, else 0."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from providers.healthchecks_api import HealthchecksError
from status.report import render, render_unknowable
from status.sources import (
    SourceError,
    api_key,
    healthchecks,
    heartbeat_settings,
    node_statuses,
    nodes_output,
    stack_config,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make status", description=__doc__)
    parser.add_argument("--stack", required=True)
    stack = parser.parse_args(argv).stack
    try:
        nodes = nodes_output(stack)
        config = stack_config(stack)
        heartbeat = heartbeat_settings(config)
        if heartbeat is None:
            print(f"heartbeats are off in stack {stack} (heartbeat.enabled false): nothing reports what nodes booted")
            return 0
        if heartbeat.provider == "urls":
            print(render_unknowable(nodes))
            return 0
        api = healthchecks(heartbeat.api_url, api_key(stack))
        statuses = node_statuses(nodes, str(config.get("domain", "")), api)
    except (SourceError, HealthchecksError) as error:
        print(f"make status: {error}", file=sys.stderr)
        return 2
    print(render(statuses, datetime.now(UTC)))
    late = [s.hostname for s in statuses if s.late]
    if late:
        print(f"down or late: {', '.join(late)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
