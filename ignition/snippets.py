"""The user's snippets in a node's Ignition (settings.snippets): each an Ignition 3.3 fragment that Ignition itself
merges into the node's config (ignition.config.merge, in order: every node's, the role's, the node's own), and
the paths and units the program keeps for itself, which no snippet may write. A snippet may add drop-ins to the
program's units (an HTTP proxy for k3s.service, say): Ignition merges a unit's entries by name, so an entry with only
drop-ins leaves the unit itself as the program wrote it."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from base import node_layout as L
from settings import NAMESPACE
from settings.model import Node, Settings
from settings.snippets import parse_snippet

# Paths the program writes on a node at run time (not in the Ignition), and its own names: none for a snippet.
RUNTIME_PATHS = (L.K3S_NODE_PASSWORD, L.K3S_KUBECONFIG, L.REGISTRIES_FILE, L.ETCD_DROPIN, L.REBOOT_SENTINEL)
OWNED_PREFIXES = (
    f"{L.K3S_TLS_DIR}/",
    "/etc/ephemeros/",
    f"{L.OPT_BIN}/ephemeros-",
    f"{L.K3S_MANIFESTS_DIR}/ephemeros-",
)
OWNED_UNIT_PREFIX = "ephemeros-"  # and of the program's drop-ins
OWNED_USER = "core"  # its SSH keys are sshKeys


@dataclass(frozen=True)
class NodeSnippet:
    key: str  # where it is set, e.g. "snippets.server[0]" or "nodes[2].snippets[0] (node node2)"
    text: str


def node_snippets(settings: Settings, node: Node) -> list[NodeSnippet]:
    """The snippets of `node`, in the order Ignition merges them: every node's, its role's, its own."""
    snippets = settings.snippets
    role = snippets.server if node.role == "server" else snippets.agent
    index = settings.nodes.index(node)
    return [
        *(NodeSnippet(f"snippets.all[{i}]", text) for i, text in enumerate(snippets.all)),
        *(NodeSnippet(f"snippets.{node.role}[{i}]", text) for i, text in enumerate(role)),
        *(NodeSnippet(f"nodes[{index}].snippets[{i}] (node {node.hostname})", t) for i, t in enumerate(node.snippets)),
    ]


def fragment(text: str) -> dict[str, Any]:
    """A snippet as the config Ignition merges: its sections, with the spec version Ignition requires of each."""
    document = parse_snippet(text)
    return {**document, "ignition": {**document.get("ignition", {}), "version": L.IGNITION_SPEC_VERSION}}


def merged_snippets(settings: Settings, node: Node) -> list[str]:
    """Each of `node`'s snippets as canonical JSON, in merge order."""
    return [json.dumps(fragment(s.text), sort_keys=True, separators=(",", ":")) for s in node_snippets(settings, node)]


def _entries(document: Mapping[str, Any], section: str, kind: str) -> Iterator[dict[str, Any]]:
    part = document.get(section)
    entries = part.get(kind) if isinstance(part, dict) else None
    if isinstance(entries, list):
        yield from (entry for entry in entries if isinstance(entry, dict))


@dataclass(frozen=True)
class Written:
    """What a fragment writes."""

    paths: list[str]  # files, directories and links
    units: list[str]  # units it changes: their contents, whether they are enabled or masked
    dropins: list[tuple[str, str]]  # (unit, drop-in) it adds
    users: list[str]


def written(document: Mapping[str, Any]) -> Written:
    paths = [
        posixpath.normpath(str(entry["path"]))
        for kind in ("files", "directories", "links")
        for entry in _entries(document, "storage", kind)
        if "path" in entry
    ]
    units = _entries(document, "systemd", "units")
    named = [entry for entry in units if "name" in entry]
    return Written(
        paths=paths,
        units=[str(entry["name"]) for entry in named if entry.keys() - {"name", "dropins"}],
        dropins=[
            (str(entry["name"]), str(dropin["name"]))
            for entry in named
            for dropin in entry.get("dropins") or ()
            if isinstance(dropin, dict) and "name" in dropin
        ],
        users=[str(entry["name"]) for entry in _entries(document, "passwd", "users") if "name" in entry],
    )


def owns_path(path: str, config_paths: Collection[str]) -> bool:
    return path in config_paths or path in RUNTIME_PATHS or path.startswith(OWNED_PREFIXES)


def owns_unit(unit: str, config_units: Collection[str]) -> bool:
    return unit in config_units or unit.startswith(OWNED_UNIT_PREFIX)


def owns_dropin(dropin: str) -> bool:
    """The program writes no drop-in of its own today; their names are kept for it, as its units' are."""
    return dropin.startswith(OWNED_UNIT_PREFIX)


@dataclass(frozen=True)
class Owned:
    """What the program writes on one node through its Ignition config."""

    paths: Collection[str]  # files and links
    units: Collection[str]


def conflicts(settings: Settings, owned: Mapping[str, Owned]) -> list[str]:
    """Snippets that write what the program writes on a node they apply to (`owned`, by hostname), each named by
    its key with what it writes and on which nodes."""
    found: dict[tuple[str, str], list[str]] = {}  # (key, what) -> nodes
    for node in settings.nodes:
        mine = owned[node.hostname]
        for snippet in node_snippets(settings, node):
            writes = written(parse_snippet(snippet.text))
            clashes = [f"writes {p}" for p in writes.paths if owns_path(p, mine.paths)]
            clashes += [f"changes the unit {u}" for u in writes.units if owns_unit(u, mine.units)]
            clashes += [f"writes the drop-in {d} of {u}" for u, d in writes.dropins if owns_dropin(d)]
            clashes += [f"changes the user {u}" for u in writes.users if u == OWNED_USER]
            for clash in clashes:
                found.setdefault((snippet.key, clash), []).append(node.hostname)
    problems = []
    for (key, clash), nodes in found.items():
        if clash.startswith("changes the user"):
            fix = "its SSH keys are sshKeys: set them there"
        elif clash.startswith("changes the unit"):
            fix = "use a unit of your own, or add a drop-in to it (an entry with only its name and dropins)"
        elif clash.startswith("writes the drop-in"):
            fix = f"give your drop-in a name that does not start with {OWNED_UNIT_PREFIX}"
        else:
            fix = "use the setting that changes it (docs/settings.md), or a path of your own"
        problems.append(f"{NAMESPACE}:{key}: {clash}, which ephemeros owns on {', '.join(nodes)}: {fix}")
    return problems
