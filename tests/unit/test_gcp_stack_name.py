"""A GCP stack whose name would make a machine's name longer than Compute Engine takes is refused,
naming the stack and the longest name it may have, before anything is created."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpc.config import settings_from_stack_file
from dpc.settings import SettingsError
from dpc.topology import derive
from providers.clouds import deploy_stack
from providers.gcp.builders import INSTANCE_NAME_LIMIT, stack_name_problems

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = derive(settings_from_stack_file(PROJECT_ROOT / "Pulumi.gcp-prod.yaml"))
LONGEST_NODE = "manager-3"
"""gcp-prod's longest node name (three managers, three workers, `bastion-1`)."""


def test_the_longest_stack_name_gce_takes_passes_and_one_more_character_is_refused() -> None:
    longest_stack = INSTANCE_NAME_LIMIT - len(f"dpc--{LONGEST_NODE}")
    assert stack_name_problems(TOPOLOGY, "s" * longest_stack) == []
    [problem] = stack_name_problems(TOPOLOGY, "s" * (longest_stack + 1))
    assert problem.path == "stack"
    assert f"at most {longest_stack} characters" in problem.fix
    assert f"{INSTANCE_NAME_LIMIT + 1} characters" in problem.message


def test_the_program_refuses_it_before_creating_anything() -> None:
    with pytest.raises(SettingsError, match="dpc:stack: the stack"):
        deploy_stack(TOPOLOGY.settings, "s" * 60)


def test_the_shipped_gcp_stacks_fit() -> None:
    for stack in ("gcp-prod", "gcp-dev"):
        assert stack_name_problems(derive(settings_from_stack_file(PROJECT_ROOT / f"Pulumi.{stack}.yaml")), stack) == []
