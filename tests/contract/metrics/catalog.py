"""The recorded metric catalogs (see record.py) and the metric names a PromQL expression reads.

promtool has no command that lists the metrics of an arbitrary expression, so a small tokenizer
does: it drops string literals, label matchers, label lists of `by`/`without`/`on`/`ignoring`/
`group_left`/`group_right`, range and subquery brackets, numbers and durations, then keeps the
identifiers that are neither a keyword nor called as a function.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

CATALOG_DIR = Path(__file__).resolve().parent

KEYWORDS = frozenset({"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "inf", "nan"})

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_TOKENS = re.compile(r"(?P<number>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)(?:ms|[smhdwy])?)|(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<call>\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    names: set[str] = set()
    for token in _TOKENS.finditer(text):
        name = token.group("name")
        if name and not token.group("call") and name.lower() not in KEYWORDS:
            names.add(name)
    return names


@cache
def catalogs() -> dict[str, frozenset[str]]:
    """Every recorded catalog: exporter → the metric names it exposes."""
    return {
        path.stem: frozenset(line for line in path.read_text().splitlines() if line and not line.startswith("#"))
        for path in sorted(CATALOG_DIR.glob("*.txt"))
    }


def exposed_metrics() -> frozenset[str]:
    """Every metric name some deployed exporter (or Prometheus itself) exposes."""
    return frozenset().union(*catalogs().values())
