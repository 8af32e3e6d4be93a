"""Pulumi Outputs for tests that build a component's plan outside a program run."""

from __future__ import annotations

import asyncio

import pulumi


def resolved_output(value: str) -> pulumi.Output[str]:
    """An Output of a known value, created and resolved in an event loop of its own.

    Pulumi registers every Output's task in a process-wide set that the next program run (such as
    review.plan.build_plan in other tests) awaits; a task left on a closed loop would make that run
    fail with "Event loop is closed", so the task is run to completion before the loop is closed."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        output = pulumi.Output.from_input(value)
        loop.run_until_complete(output.future())
        loop.run_until_complete(asyncio.sleep(0))
        return output
    finally:
        asyncio.set_event_loop(None)
        loop.close()
