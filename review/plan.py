"""The offline plan: runs the real `__main__.py` under Pulumi mocks with a stack's config file and
records every registration in the shape of `pulumi preview --json`.

Nothing here talks to a cloud. The mocks (`review.mocks`, each cloud's through its own) answer with
realistic ids so that dependent values (user data, policies, attachments) resolve to what they
would be; the record keeps the inputs as the engine sees them (camelCase), secrets shown as "[secret]".

`preview=True` plans as a stack's first `pulumi preview`: the program runs as a dry run and every
resource, to be created, has its computed outputs unknown (ids, ARNs, generated names, passwords and
keys); an input computed from one carries the engine's unknown sentinel, shown "[unknown]", and a
reference to a provider not yet created names its id by the sentinel, as the engine's does.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import heapq
import os
import re
import runpy
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

import pulumi
from google.protobuf import json_format
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.settings import get_root_resource, reset_options
from pulumi.runtime.stack import Stack, run_pulumi_func

from components.access import OFFLINE_PLAN_VARIABLE
from dpc.config import SECRET_SHOWN, stack_file_config
from review.mocks import PlanMocks

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_MARK = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def _plain_mapping(mapping: dict[str, Any], reveal: bool) -> Any:
    if mapping.get(SECRET_SIG) == SECRET_MARK:
        # A secret not known yet (a preview's generated password) is unknown to the pack, as the
        # engine hands it over, and hides nothing: it is shown unknown, not masked.
        return _plain(mapping.get("value"), reveal) if reveal or mapping.get("value") == UNKNOWN else SECRET_SHOWN
    if RESOURCE_SIG in mapping:
        return mapping.get("urn")
    return {key: _plain(item, reveal) for key, item in sorted(mapping.items())}


def _plain(value: Any, reveal: bool = False) -> Any:
    """A serialized property value as `pulumi preview --json` shows it: secrets masked (or, with
    `reveal`, shown for the checks that must read them and never write them), resource references
    as URNs, whole numbers as integers (the wire format carries every number as a double).
    """
    if isinstance(value, dict):
        return _plain_mapping(cast(dict[str, Any], value), reveal)
    if isinstance(value, list):
        return [_plain(item, reveal) for item in cast(list[Any], value)]
    if value == UNKNOWN:
        return "[unknown]"
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class RecordingMonitor(MockMonitor):
    """The mock monitor, also keeping what the engine would see of each registration."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.steps: list[dict[str, Any]] = []
        self.revealed: dict[str, dict[str, Any]] = {}
        """Each resource's inputs with its secrets shown: for the limits checks, never written out."""

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802  (the gRPC method's name)
        """Records the registration, then answers as the mock monitor does."""
        urn = self.make_urn(request.parent, request.type, request.name)
        wire = json_format.MessageToDict(request.object) if request.object else {}
        inputs: dict[str, Any] = _plain(wire)
        self.revealed[urn] = _plain(wire, reveal=True)
        self.steps.append({
            "op": "create",
            "urn": urn,
            "provider": request.provider,
            "newState": {
                "urn": urn,
                "type": request.type,
                "custom": bool(request.custom),
                "parent": request.parent,
                "inputs": inputs,
                "protect": bool(request.protect),
                "dependencies": sorted(set(request.dependencies)),
                "propertyDependencies": {key: sorted(set(deps.urns)) for key, deps in sorted(request.propertyDependencies.items()) if deps.urns},
                # ResourceV3's options that decide what a change does to it (review.steps diffs two plans by them), where set.
                **({"ignoreChanges": sorted(request.ignoreChanges)} if request.ignoreChanges else {}),
                **({"replaceOnChanges": sorted(request.replaceOnChanges)} if request.replaceOnChanges else {}),
                "provider": request.provider,
            },
        })
        return super().RegisterResource(request)  # pyright: ignore[reportUnknownMemberType]  # the mock monitor is untyped

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802  (the gRPC method's name)
        """Keeps the stack's outputs (secrets masked) with its step, as a preview shows them."""
        for step in self.steps:
            if step["urn"] == request.urn and step["newState"]["type"] == "pulumi:pulumi:Stack":
                step["newState"]["outputs"] = _plain(json_format.MessageToDict(request.outputs)) if request.outputs else {}
        return super().RegisterResourceOutputs(request)  # pyright: ignore[reportUnknownMemberType]  # the mock monitor is untyped


def stack_config(stack: str, root: Path = PROJECT_ROOT) -> tuple[dict[str, str], list[str]]:
    """The config of `root/Pulumi.<stack>.yaml` as the engine passes it, and its secret keys."""
    return stack_file_config(root / f"Pulumi.{stack}.yaml")


def _in_dependency_order(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps with every parent, provider and dependency before the resources that need it, ties
    broken by URN: the engine registers resources in whatever order their inputs resolve, and a plan
    that reorders itself from run to run cannot be diffed.
    """
    by_urn = {step["urn"]: step for step in steps}
    needs: dict[str, set[str]] = {}
    for urn, step in by_urn.items():
        state = step["newState"]
        provider = state["provider"].rsplit("::", 1)[0] if state["provider"] else ""
        needs[urn] = {u for u in (state["parent"], provider, *state["dependencies"]) if u in by_urn and u != urn}
    needed_by: dict[str, list[str]] = {urn: [] for urn in by_urn}
    for urn, required in needs.items():
        for other in required:
            needed_by[other].append(urn)
    ready = [urn for urn, required in needs.items() if not required]
    heapq.heapify(ready)
    ordered: list[dict[str, Any]] = []
    while ready:
        urn = heapq.heappop(ready)
        ordered.append(by_urn[urn])
        for dependent in needed_by[urn]:
            needs[dependent].discard(urn)
            if not needs[dependent]:
                heapq.heappush(ready, dependent)
    if len(ordered) != len(steps):
        raise RuntimeError("the recorded resources depend on each other in a cycle")
    return ordered


def _run_main() -> None:
    """The project's program, `__main__.py`, as `pulumi up` runs it."""
    runpy.run_path(str(PROJECT_ROOT / "__main__.py"), run_name="__main__")


_API_VERSION_TYPE = re.compile(r"[^:]+:[^:/]+/v[^:/]+:[^:]+")
"""A type token of one API version of a provider's type (`azure-native:network/v20240301:VirtualNetwork`)."""


def _drop_api_version_aliases(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    """The resource without the aliases its SDK declares for its type's other API versions; the
    program's own aliases kept.
    """
    aliases = list(args.opts.aliases or [])
    kept = [a for a in aliases if not (isinstance(a, pulumi.Alias) and isinstance(a.type_, str) and _API_VERSION_TYPE.fullmatch(a.type_))]
    if len(kept) == len(aliases):
        return None
    opts = copy.copy(args.opts)
    opts.aliases = kept
    return pulumi.ResourceTransformationResult(args.props, opts)


def _without_api_version_aliases(program: Callable[[], None]) -> Callable[[], None]:
    """The program, its resources without the aliases a provider SDK declares for every API version
    of their type (azure-native: up to 60 a resource, about 3,000 in azure-prod). They let the engine
    find state recorded under an older version's token; an offline plan has no state and records no
    alias, and the SDK computing each alias's URN cost about 2 s of azure-prod's plan time.
    """

    def run() -> None:
        pulumi.runtime.register_stack_transformation(_drop_api_version_aliases)
        program()

    return run


def _then_exports(program: Callable[[], None]) -> Callable[[], None]:
    """The program, then the stack's exports registered: under mocks the root stack registered its
    (then empty) outputs before the program ran, where the engine registers them after it.
    """

    def run() -> None:
        program()
        root = get_root_resource()
        if isinstance(root, Stack):
            root.register_outputs(dict(root.outputs))

    return run


_P = ParamSpec("_P")
_T = TypeVar("_T")


class _InlineExecutor(ThreadPoolExecutor):
    """The event loop's default executor for the offline plan: each call runs at once, on the loop's
    thread, where the SDK hands it to a worker thread.

    The SDK sends every call to the resource monitor through the loop's executor, so that the loop
    keeps running while an engine answers over gRPC. The mock monitor answers in-process, in a fraction
    of a millisecond; handing 400 calls to worker threads and their answers back made the loop wait
    idle some 1,400 times, for a worker to get a core and then for itself to get one back: 0.6 s of a
    prod plan on a quiet machine, 2-5 s when other work loads its two cores; 0.01 s inline. The mock
    monitor awaits its own serialisation on an event loop of its thread, as on a worker thread: it
    gets one of its own here, run while the plan's loop steps aside (the running loop is per thread,
    and one thread runs one loop at a time).
    """

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self._monitor_loop = asyncio.new_event_loop()

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        """Runs `fn` now and gives its result (or its exception) as a finished future."""
        future: Future[_T] = Future()
        plan_loop = asyncio.get_running_loop()
        asyncio.events._set_running_loop(None)  # pyright: ignore[reportPrivateUsage]  # asyncio's hook for loop implementations
        asyncio.set_event_loop(self._monitor_loop)
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # as a worker thread hands back whatever the call raised
            future.set_exception(error)
        finally:
            asyncio.set_event_loop(plan_loop)
            asyncio.events._set_running_loop(plan_loop)  # pyright: ignore[reportPrivateUsage]
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Closes the monitor's loop with the executor (the plan's loop shuts its executor down as it closes)."""
        self._monitor_loop.close()
        super().shutdown(wait, cancel_futures=cancel_futures)


@contextmanager
def collector_paused() -> Generator[None]:
    """Python's cyclic garbage collector off while the program runs, as it was before afterwards.

    The run creates some 200,000 objects (the AWS SDK's generated types, each resource's outputs and
    their futures) that nearly all live until the plan is written: the collector went over them some
    850 times, a quarter of prod's plan time (1.3 s of 5), and had next to nothing to free (a
    collection after a run without it finds 20 objects; peak memory 164 MB with it, 166 MB without).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def _call_stacks_left_out() -> Generator[None]:
    """Registrations without the call stack the SDK would send the engine with each of them.

    For every resource the SDK walks the whole Python stack, reading the source of each file on it,
    so that the engine can show which line created the resource; the mock monitor drops it and the
    plan records none of it. It was 0.2-0.4 s of prod's plan. The SDK has no switch for it and
    looks the function up at each registration: it is swapped for one that returns an empty stack
    for the run's duration (pyright holds the name to the SDK's).
    """
    walk = sdk_resource._get_stack_trace  # pyright: ignore[reportPrivateUsage]  # no public switch
    sdk_resource._get_stack_trace = source_pb2.StackTrace  # pyright: ignore[reportPrivateUsage]
    try:
        yield
    finally:
        sdk_resource._get_stack_trace = walk  # pyright: ignore[reportPrivateUsage]


def build_plan(stack: str, root: Path = PROJECT_ROOT, *, preview: bool = False) -> dict[str, Any]:
    """Run the program for the stack file `root/Pulumi.<stack>.yaml` under mocks; return the plan
    (`preview`: as a first `pulumi preview` sees it, outputs of the resources to create unknown).
    """
    return build_plan_revealed(stack, root, preview=preview)[0]


def build_plan_revealed(stack: str, root: Path = PROJECT_ROOT, *, preview: bool = False) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The plan, and each resource's inputs with its secrets shown, by URN (for checks that must
    read what a preview hides, such as the size of a secret user data; never written anywhere).
    """
    config, secret_keys = stack_config(stack, root)
    return plan_program(_run_main, stack, config, secret_keys, preview=preview)


def plan_program(
    program: Callable[[], None], stack: str, config: Mapping[str, str], secret_keys: list[str], *, preview: bool = False,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The plan of any Pulumi program run as the stack with that config (`build_plan_revealed` runs
    the project's; a test runs the composition with a cloud of its own), and its revealed inputs.
    """
    monitor = RecordingMonitor(PlanMocks(config, preview=preview))
    outside = os.environ.get(OFFLINE_PLAN_VARIABLE)
    os.environ[OFFLINE_PLAN_VARIABLE] = "1"
    loop = asyncio.new_event_loop()
    loop.set_default_executor(_InlineExecutor())
    asyncio.set_event_loop(loop)
    try:
        reset_options(project="dpc", stack=stack, preview=preview)
        pulumi.runtime.set_all_config(dict(config), secret_keys)
        pulumi.runtime.set_mocks(monitor.mocks, project="dpc", stack=stack, preview=preview, monitor=monitor)
        with collector_paused(), _call_stacks_left_out():
            loop.run_until_complete(run_pulumi_func(_then_exports(_without_api_version_aliases(program))))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        if outside is None:
            del os.environ[OFFLINE_PLAN_VARIABLE]
        else:
            os.environ[OFFLINE_PLAN_VARIABLE] = outside
    steps = _in_dependency_order(monitor.steps)
    return {"steps": steps, "changeSummary": {"create": len(steps)}}, monitor.revealed


def summary(plan: Mapping[str, Any]) -> str:
    """Resources per component and type, as a reviewer reads a preview."""
    steps: list[dict[str, Any]] = plan["steps"]
    components = {s["urn"]: s["urn"].split("::")[-1] for s in steps if not s["newState"]["custom"]}
    counts: dict[tuple[str, str], int] = {}
    for step in steps:
        state = step["newState"]
        if state["custom"]:
            owner = components.get(state["parent"], "(stack)")
            counts[(owner, state["type"])] = counts.get((owner, state["type"]), 0) + 1
    lines = [f"{plan['changeSummary']['create']} resources to create"]
    for owner in sorted({owner for owner, _ in counts}):
        total = sum(n for (o, _), n in counts.items() if o == owner)
        lines.append(f"  {owner}: {total}")
        lines.extend(f"    {n:4d}  {t}" for (o, t), n in sorted(counts.items()) if o == owner)
    return "\n".join(lines)
