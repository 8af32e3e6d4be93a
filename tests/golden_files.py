"""Golden files: rendered output compared byte for byte with a reviewed copy under tests/golden/.

A golden file turns any change to rendered output into a diff someone has to look at. After an
intended change, DPC_UPDATE_GOLDEN=1 rewrites the golden files (and removes those nothing renders
any more) instead of comparing, so that the change shows up as a reviewable diff in git.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
UPDATE_GOLDEN = os.environ.get("DPC_UPDATE_GOLDEN") == "1"


def assert_matches_golden(path: Path, content: str, label: str) -> None:
    """Fail with a unified diff when `content` differs from the golden file at `path`; `label` names
    the content in the failure. In rewrite mode, write `content` to `path` instead.

    Bytes rather than text, so that the comparison sees exactly what the file holds (no newline
    translation, no locale encoding).
    """
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode())
        return
    golden = path.relative_to(PROJECT_ROOT)
    assert path.is_file(), f"{golden} is missing; run with DPC_UPDATE_GOLDEN=1 to write it"
    expected = path.read_bytes().decode()
    if content != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), content.splitlines(True), str(golden), "rendered", n=2))
        pytest.fail(f"{label} differs from its golden file (DPC_UPDATE_GOLDEN=1 rewrites it after an intended change):\n{diff}")


def assert_no_stale_golden_files(directory: Path, expected: set[str]) -> None:
    """Fail listing the files in `directory` not named in `expected`; in rewrite mode, remove them.

    A golden file nothing renders any more would otherwise stay in the tree, reviewed by no test.
    """
    present = {path.name for path in directory.iterdir()} if directory.is_dir() else set[str]()
    stale = present - expected
    if UPDATE_GOLDEN:
        for name in stale:
            (directory / name).unlink()
        return
    assert not stale, f"golden files nothing renders in {directory.relative_to(PROJECT_ROOT)}: {sorted(stale)}; DPC_UPDATE_GOLDEN=1 removes them"
