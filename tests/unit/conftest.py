"""Plans of the shipped stacks, each built once per session by running the real program under mocks
(each build in its own event loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dpc.config import settings_from_stack_file
from dpc.settings import Settings
from review.plan import build_plan
from tests.plan_graph import PlanGraph

STACKS = ("prod", "staging", "dev")
_PLANS: dict[tuple[str, str], dict[str, Any]] = {}


def plan_of(stack: str, root: Path | None = None) -> dict[str, Any]:
    """The plan of a stack file, cached by file content so that a test's own stack files are planned anew."""
    directory = root or Path(__file__).resolve().parents[2]
    key = (stack, (directory / f"Pulumi.{stack}.yaml").read_text())
    if key not in _PLANS:
        _PLANS[key] = build_plan(stack, directory)
    return _PLANS[key]


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def graph(stack: str) -> PlanGraph:
    return PlanGraph(plan_of(stack))


@pytest.fixture
def settings(stack: str) -> Settings:
    return settings_from_stack_file(Path(__file__).resolve().parents[2] / f"Pulumi.{stack}.yaml")
