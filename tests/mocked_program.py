"""Running one piece of a Pulumi program (a component and its builder) under mocks, as the offline
plan runs the whole program: in an event loop of its own, every registration recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pulumi
from pulumi.runtime.settings import reset_options
from pulumi.runtime.stack import run_pulumi_func

from review.plan import RecordingMonitor


def run_mocked(mocks: pulumi.runtime.Mocks, program: Callable[[], None], stack: str) -> RecordingMonitor:
    """Runs `program` as stack `stack` of project `dpc` against `mocks`; returns what it registered."""
    monitor = RecordingMonitor(mocks)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        reset_options(project="dpc", stack=stack, preview=False)
        pulumi.runtime.set_mocks(monitor.mocks, project="dpc", stack=stack, preview=False, monitor=monitor)
        loop.run_until_complete(run_pulumi_func(program))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return monitor
