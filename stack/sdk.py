"""How the program uses the Pulumi SDK it runs in: two of its habits, which cost every `pulumi up` time that grows
with the cluster, are kept to what this program needs. tests/test_engine.py checks the stack traces, so that an SDK
that changes how it records them fails it rather than slowing down unnoticed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pulumi.log
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime.proto import source_pb2

KEEP_DEBUG = "EPHEMEROS_SDK_DEBUG"  # set (to anything) to keep the SDK's own debug messages


def _dropped(*_: Any, **__: Any) -> None:
    """A debug message not sent."""


def quiet_sdk_debug_messages() -> None:
    """Keep the SDK's own debug messages ("registering resource ...") from the engine.

    The SDK sends several per resource, each a blocking call to the engine on the program's one thread
    (pulumi/pulumi#7292 cut some of them, not these), which the engine shows only with `--debug`: with 50 nodes,
    about 1,300 round trips per run of the program, a second or more of every `pulumi up` spent on messages nobody
    reads. The program itself logs no debug messages. Set EPHEMEROS_SDK_DEBUG to keep them.
    """
    if not os.environ.get(KEEP_DEBUG):
        pulumi.log.debug = _dropped


def project_stack_traces() -> None:
    """Keep only the project's own frames in the call stack the SDK records with each resource.

    The state keeps each resource's stack trace; the frames below the project's (the SDK's runtime, asyncio, the
    language host) are the same for every resource and were a quarter of the state's bytes, which the engine writes
    whole after every step of an update.
    """
    whole = getattr(sdk_resource, "_get_stack_trace", None)
    if whole is None:  # an SDK that records stack traces otherwise: its own way, then (tests/test_engine.py says so)
        return
    project = Path.cwd().as_uri() + "/"

    def ours() -> source_pb2.StackTrace:
        frames = [f for f in whole().frames if f.pc.uri.startswith(project) and "/.venv/" not in f.pc.uri]
        return source_pb2.StackTrace(frames=frames)

    sdk_resource._get_stack_trace = ours
