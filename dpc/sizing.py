"""The sizing formula of design §6.1 and §6.2, as pure functions of the machine and the workload."""

from __future__ import annotations

import math
from dataclasses import dataclass


def cores_needed(expected_tps: int) -> int:
    """cores_needed = max(4, expected_tps / 500), rounded up."""
    return max(4, math.ceil(expected_tps / 500))


@dataclass(frozen=True)
class PostgresSizing:
    """PostgreSQL memory and connection settings for one worker."""

    max_connections: int
    shared_buffers_mb: int
    effective_cache_size_mb: int
    work_mem_kb: int


def postgres_sizing(memory_gib: float, expected_concurrent_users: int) -> PostgresSizing:
    """max_connections = users × 1.5 + 100; shared_buffers = RAM / 4; effective_cache_size = RAM × 3/4;
    work_mem = (RAM − shared_buffers) / max_connections / 2.
    """
    ram_mb = int(memory_gib * 1024)
    max_connections = math.ceil(expected_concurrent_users * 1.5) + 100
    shared_buffers_mb = ram_mb // 4
    return PostgresSizing(
        max_connections=max_connections,
        shared_buffers_mb=shared_buffers_mb,
        effective_cache_size_mb=ram_mb * 3 // 4,
        work_mem_kb=(ram_mb - shared_buffers_mb) * 1024 // max_connections // 2,
    )
