"""Plans of the shipped stacks, each built once per session by running the real program under mocks
(each build in its own event loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dpc.config import settings_from_stack_file
from dpc.settings import Settings
from review.plan import build_plan_revealed
from tests.plan_graph import PlanGraph

STACKS = ("prod", "staging", "dev")
_PLANS: dict[tuple[str, str], tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {}


def planned(stack: str, root: Path | None = None) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The plan of a stack file and its revealed inputs, cached by file content so that a test's
    own stack files are planned anew."""
    directory = root or Path(__file__).resolve().parents[2]
    key = (stack, (directory / f"Pulumi.{stack}.yaml").read_text())
    if key not in _PLANS:
        _PLANS[key] = build_plan_revealed(stack, directory)
    return _PLANS[key]


def plan_of(stack: str, root: Path | None = None) -> dict[str, Any]:
    """The plan of a stack file (`planned`)."""
    return planned(stack, root)[0]


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def graph(stack: str) -> PlanGraph:
    return PlanGraph(plan_of(stack))


@pytest.fixture
def settings(stack: str) -> Settings:
    return settings_from_stack_file(Path(__file__).resolve().parents[2] / f"Pulumi.{stack}.yaml")
