"""A node's stick files all at once, from secrets given here in place of those Pulumi makes: for tests and benchmarks
that build sticks without the engine. The program makes each file as soon as its own secrets are made
(bootmedia.secret_files.stick_files, components.node); this goes through the same files."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from bootmedia.secret_files import stick_files
from settings.credentials import Credentials
from settings.model import Node, Settings
from settings.node_plan import node_plan


@dataclass(frozen=True)
class GeneratedSecrets:
    """The secrets Pulumi makes for one node (cluster-wide ones included); their names are the program's Sources."""

    server_token: str = field(repr=False)
    agent_token: str = field(repr=False)
    node_password: str = field(repr=False)
    heartbeat_url: str | None = field(default=None, repr=False)
    cluster_heartbeat_url: str | None = field(default=None, repr=False)
    datastore_endpoint: str | None = field(default=None, repr=False)
    datastore_ca: str | None = field(default=None, repr=False)
    agent_join_token: str | None = field(default=None, repr=False)  # default: agent_token


def secret_files(
    settings: Settings, node: Node, credentials: Credentials, generated: GeneratedSecrets
) -> dict[str, str]:
    """File name -> content for `node`'s secrets partition, all at once: what a stick made from `generated` holds."""
    values = {f.name: getattr(generated, f.name) for f in fields(GeneratedSecrets)}
    values["agent_join_token"] = generated.agent_join_token or generated.agent_token
    plan = node_plan(settings, node, credentials)
    return {name: file.content(values) for name, file in stick_files(settings, plan, credentials).items()}
