"""Machine types each cloud offers to this product, with the figures sizing needs.

Settings are checked against this catalogue so that a typo in a machine type fails
before anything is created, and the PostgreSQL sizing (seed §6.3) reads memory from
here rather than from a second, hand-kept table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Cloud = Literal["aws", "gcp", "azure", "local"]
"""`local`: the database stack alone, on the Docker engine the program runs next to."""


@dataclass(frozen=True)
class MachineType:
    """One machine type: its vCPUs and memory in GiB."""

    name: str
    vcpus: int
    memory_gib: float


def _table(*rows: tuple[str, int, float]) -> dict[str, MachineType]:
    return {name: MachineType(name, vcpus, memory) for name, vcpus, memory in rows}


MACHINE_TYPES: dict[Cloud, dict[str, MachineType]] = {
    "aws": _table(
        ("t3.micro", 2, 1),
        ("t3.small", 2, 2),
        ("t3.medium", 2, 4),
        ("t3.large", 2, 8),
        ("t3.xlarge", 4, 16),
        ("t3.2xlarge", 8, 32),
        ("m6i.large", 2, 8),
        ("m6i.xlarge", 4, 16),
        ("m6i.2xlarge", 8, 32),
        ("m6i.4xlarge", 16, 64),
        ("r6i.large", 2, 16),
        ("r6i.xlarge", 4, 32),
        ("r6i.2xlarge", 8, 64),
        ("r6i.4xlarge", 16, 128),
        ("r6i.8xlarge", 32, 256),
    ),
    "gcp": _table(
        ("e2-small", 2, 2),
        ("e2-medium", 2, 4),
        ("e2-standard-2", 2, 8),
        ("e2-standard-4", 4, 16),
        ("n2-standard-2", 2, 8),
        ("n2-standard-4", 4, 16),
        ("n2-standard-8", 8, 32),
        ("n2-standard-16", 16, 64),
        ("n2-highmem-2", 2, 16),
        ("n2-highmem-4", 4, 32),
        ("n2-highmem-8", 8, 64),
        ("n2-highmem-16", 16, 128),
    ),
    "azure": _table(
        ("Standard_B1s", 1, 1),
        ("Standard_B2s", 2, 4),
        ("Standard_B2ms", 2, 8),
        ("Standard_D2s_v5", 2, 8),
        ("Standard_D4s_v5", 4, 16),
        ("Standard_D8s_v5", 8, 32),
        ("Standard_D16s_v5", 16, 64),
        ("Standard_E2s_v5", 2, 16),
        ("Standard_E4s_v5", 4, 32),
        ("Standard_E8s_v5", 8, 64),
        ("Standard_E16s_v5", 16, 128),
    ),
    "local": _table(
        ("local", 2, 2),
    ),
}
"""`local` has one "machine type": the share of the developer's engine each role's services may use."""


def machine_type(cloud: Cloud, name: str) -> MachineType:
    """The catalogue entry; settings validation guarantees it exists."""
    return MACHINE_TYPES[cloud][name]
