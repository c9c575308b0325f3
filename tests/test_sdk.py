"""The program's wait for its Outputs at its end (stack/sdk.py): the SDK's, in time linear in their number, with the
same outcome: every Output awaited, those made while waiting too; the first failure raised as it happens, even while
another Output never completes; a resource the engine failed (continue-on-error) not raised."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from typing import Any, cast

import pulumi
import pytest
from pulumi.runtime import stack as sdk_stack
from pulumi.runtime.settings import SETTINGS

from stack import sdk


@pytest.fixture(autouse=True)
def own_outputs() -> Iterator[None]:
    """The SDK's set of pending Outputs, empty for the test and restored afterwards."""
    kept = set(SETTINGS.outputs)
    SETTINGS.outputs.clear()
    yield
    SETTINGS.outputs.clear()
    SETTINGS.outputs.update(kept)


def output_of(awaitable: Awaitable[str]) -> pulumi.Output[str]:
    return cast(pulumi.Output[str], pulumi.Output.from_input(cast(Any, awaitable)))


async def later(value: str, seconds: float = 0.01) -> str:
    await asyncio.sleep(seconds)
    return value


def test_the_replacement_is_used_only_with_the_sdk_it_was_written_from(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sdk.sdk_wait_for_rpcs_digest() == sdk.SDK_WAIT_FOR_RPCS, (
        "the installed Pulumi SDK's wait_for_rpcs is not the one stack/sdk.py replaces: compare them, carry over "
        "what changed, and update SDK_WAIT_FOR_RPCS"
    )
    monkeypatch.setattr(sdk_stack, "wait_for_rpcs", sdk.SDK_OWN_WAIT_FOR_RPCS)
    sdk.wait_for_outputs_once_each()
    assert sdk_stack.wait_for_rpcs is sdk._wait_for_rpcs
    monkeypatch.setattr(sdk_stack, "wait_for_rpcs", sdk.SDK_OWN_WAIT_FOR_RPCS)
    monkeypatch.setattr(sdk, "SDK_WAIT_FOR_RPCS", "the digest of another SDK's")
    sdk.wait_for_outputs_once_each()
    assert sdk_stack.wait_for_rpcs is sdk.SDK_OWN_WAIT_FOR_RPCS


def test_every_output_is_awaited_those_made_while_waiting_too() -> None:
    seen: list[str] = []

    async def program() -> None:
        for i in range(200):
            output_of(later(f"o{i}", 0.001 * (i % 7))).apply(seen.append)

        def more(value: str) -> None:
            seen.append(value)
            output_of(later("made while waiting", 0.02)).apply(seen.append)

        output_of(later("first")).apply(more)
        await sdk._wait_for_rpcs()
        assert not SETTINGS.outputs

    asyncio.run(program())
    assert sorted(seen) == sorted([*(f"o{i}" for i in range(200)), "first", "made while waiting"])


def test_the_first_failure_is_raised_while_another_output_never_completes() -> None:
    async def program() -> None:
        never: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        output_of(never).apply(str.upper)

        def fail(value: str) -> str:
            raise ValueError(f"a bad {value}")

        output_of(later("value")).apply(fail)
        with pytest.raises(ValueError, match="a bad value"):
            await asyncio.wait_for(sdk._wait_for_rpcs(), timeout=30)

    asyncio.run(program())


def test_a_resource_the_engine_failed_does_not_stop_the_wait() -> None:
    seen: list[str] = []

    async def program() -> None:
        async def failed() -> str:
            raise sdk_stack.ResourceRegistrationFailed("the engine failed this resource")

        output_of(failed())
        output_of(later("other", 0.05)).apply(seen.append)
        await sdk._wait_for_rpcs()
        assert not SETTINGS.outputs

    asyncio.run(program())
    assert seen == ["other"]
