"""The stack's tags as GCP labels, the one conversion every GCP builder uses.

GCP labels take lowercase letters, digits, `_` and `-` in keys and values, at most 63 characters,
keys starting with a letter; the neutral tags (`CostCenter: Platform Team`) do not fit as they are.
Keys are snake-cased (`cost_center`), values lowercased with any other character as `-`. The
policy pack checks the same required keys in this converted form (`policies.tagging`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from components.base import Scope

LABEL_LIMIT = 63


def label_key(tag: str) -> str:
    """`CostCenter` → `cost_center`; `Name` → `name`."""
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", tag).lower()
    return re.sub(r"[^a-z0-9_-]", "_", snake)[:LABEL_LIMIT]


def label_value(value: str) -> str:
    """`Platform Team` → `platform-team`: lowercase, other characters as `-`, at most 63."""
    return re.sub(r"[^a-z0-9_-]", "-", value.lower())[:LABEL_LIMIT]


def labels(tags: Mapping[str, str]) -> dict[str, str]:
    """Tags as labels, sorted so the same tags always give the same inputs."""
    return dict(sorted((label_key(key), label_value(value)) for key, value in tags.items()))


def scope_labels(scope: Scope, **extra: str) -> dict[str, str]:
    """The labels of a child of `scope`: the stack's tags plus the child's own (`Role`, `Purpose`)."""
    return labels(scope.tags_with(**extra))
