"""How the program uses the Pulumi SDK it runs in: three of its habits, which cost every `pulumi up` time that grows
with the cluster, are kept to what this program needs. tests/test_engine.py checks the stack traces and
tests/test_sdk.py the wait for outputs, so that an SDK that changes either fails them rather than slowing down
unnoticed or running a stale copy."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import os
from pathlib import Path
from typing import Any

import pulumi.log
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime import stack as sdk_stack
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.settings import SETTINGS, _get_rpc_manager

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


# The SDK's own wait_for_rpcs, and the sha256 of its source in pulumi 3.259.0, which `_wait_for_rpcs` was written from.
SDK_OWN_WAIT_FOR_RPCS = sdk_stack.wait_for_rpcs
SDK_WAIT_FOR_RPCS = "c92289a2f839f5221a4068c262a706a05ce2af506b5484545ac5d371b6211e48"


def sdk_wait_for_rpcs_digest() -> str:
    return hashlib.sha256(inspect.getsource(SDK_OWN_WAIT_FOR_RPCS).encode()).hexdigest()


async def _drain_outputs() -> None:
    """Await every pending Output of the program, re-raising the first failure as it happens, as the SDK does; but
    each Output is watched once, where the SDK's `asyncio.wait(..., FIRST_COMPLETED)` over all pending Outputs adds
    and removes a callback on every one of them each time any one completes."""
    outputs, lock = SETTINGS.outputs, SETTINGS.lock
    finished: asyncio.Queue[asyncio.Future[Any]] = asyncio.Queue()
    watched: set[asyncio.Future[Any]] = set()
    while True:
        if finished.empty():
            with lock:
                new = outputs - watched  # an Output that succeeds leaves the set by itself
            if not new and not watched:
                return
            for task in new:
                watched.add(task)
                task.add_done_callback(finished.put_nowait)
        task = await finished.get()
        watched.discard(task)
        with lock:
            outputs.discard(task)
        # As the SDK: a resource the engine failed (continue-on-error) does not stop the program.
        with contextlib.suppress(sdk_stack.ResourceRegistrationFailed):
            await task


async def _wait_for_rpcs(await_all_outstanding_tasks: bool = True) -> None:
    """The SDK's wait_for_rpcs, with its wait for outstanding Outputs linear in their number (`_drain_outputs`)."""
    rpc_manager = _get_rpc_manager()
    while True:
        while rpc_manager.rpcs:
            await asyncio.sleep(0)
            try:
                await rpc_manager.rpcs.pop()
            except Exception as exn:
                if rpc_manager.unhandled_exception is not None:
                    raise exn from rpc_manager.unhandled_exception.with_traceback(rpc_manager.exception_traceback)
                raise
        if rpc_manager.unhandled_exception is not None:
            raise rpc_manager.unhandled_exception.with_traceback(rpc_manager.exception_traceback)
        if await_all_outstanding_tasks:
            await _drain_outputs()
        if not rpc_manager.rpcs:
            break


def wait_for_outputs_once_each() -> None:
    """Wait for the program's Outputs at its end in time linear in their number.

    Once the program has made its resources, the SDK waits for every pending Output (a few per resource property)
    with `asyncio.wait(FIRST_COMPLETED)` over all of them, again after each completion: quadratic in the cluster's
    size, and about 40% of the program's CPU in a 50-node no-change `pulumi up`. The replacement does the same in
    the same order with one callback per Output. It is used only with the SDK whose function it was written from
    (its source's digest); another SDK keeps its own.
    """
    if sdk_wait_for_rpcs_digest() == SDK_WAIT_FOR_RPCS:
        sdk_stack.wait_for_rpcs = _wait_for_rpcs
