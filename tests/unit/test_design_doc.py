"""The project's design document (docs/design.md) and the citations of it.

Code, comments, stack files and tests cite the design by section (`design §4.2`, `design §4.2 and
§4.3`). A citation of a section the document does not have points a maintainer at nothing, so
every one is checked here, in every text file of the project. The original architecture the
project started from is not in the repository, so its section citations (`seed §4.1`) must be
gone too (convert one with the map at the end of docs/design.md), except where the text itself is
deployed (`DEFERRED_IN_DEPLOYED_CONTENT`).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"

"""Paths whose citations of the original architecture are converted separately (prefixes)."""

DEFERRED_IN_DEPLOYED_CONTENT = {
    "images/postgres/Dockerfile": 1,
    "images/postgres/backup_agent.py": 1,
}
"""Lines citing the original architecture, by file, left on purpose where the text itself is
deployed, so that even a comment changed there changes what runs: an image's tag is a digest of
its build context (`components.database.DatabasePlan`), so a comment changed there re-tags the image
and rolls every service that runs it (for the postgres image, every Patroni member: up to three
failovers, design §8.2). They are converted with the next change that content needs anyway; then
their entry goes (the Swarm bootstrap scripts' went with the metadata guard, which changes every
node's user data anyway)."""

SECTION = r"\d+(?:\.\d+)*"
CITATION = re.compile(rf"[Dd]esign §({SECTION})((?:\s*(?:,|and|or|–|-)\s*§{SECTION})*)")
"""`design §4.2`, with any sections listed after it (`, §4.3`, `and §4.4`, `–§4.4`)."""
LISTED = re.compile(rf"§({SECTION})")
SECTION_MARK = re.compile(r"§\s*\d")
HEADING = re.compile(rf"^#{{2,3}} ({SECTION})\.? ", re.MULTILINE)
ANCHOR = re.compile(rf'^<a id="design-({SECTION})"></a>\n#{{2,3}} ({SECTION})\.? ', re.MULTILINE)
MAP_ANCHOR = '<a id="design-12"></a>'


def design_sections() -> set[str]:
    """The numbers of every chapter and section heading of the design document."""
    return set(HEADING.findall(DESIGN.read_text(encoding="utf-8")))


def cited_sections(text: str) -> Iterator[tuple[int, str]]:
    """(line, section) of every design section `text` cites, lists included."""
    for match in CITATION.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        yield line, match.group(1)
        for listed in LISTED.findall(match.group(2)):
            yield line, listed


def uncited_section_marks(text: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every section mark (`§4.1`) that is no part of a design citation: a
    citation of the original architecture.
    """
    covered = [match.span() for match in CITATION.finditer(text)]
    lines = text.splitlines()
    found = (
        text.count("\n", 0, match.start()) + 1
        for match in SECTION_MARK.finditer(text)
        if not any(start <= match.start() < end for start, end in covered)
    )
    for line in dict.fromkeys(found):
        yield line, lines[line - 1].strip()


def _project_files() -> list[Path]:
    """The files git tracks, and the untracked ones it does not ignore (plan outputs and caches are
    not the project's); every file but hidden directories' where there is no git checkout.
    """
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return list(_walk_visible())
    return [ROOT / name for name in listed.decode().split("\0") if name]


def _walk_visible() -> Iterator[Path]:
    """Every file outside hidden directories (the venv, caches), .github excepted."""
    for directory, subdirectories, files in os.walk(ROOT):
        subdirectories[:] = [d for d in subdirectories if d == ".github" or not d.startswith(".")]
        yield from (Path(directory, name) for name in files)


def project_text_files() -> Iterator[tuple[str, str]]:
    """(path relative to the project, text) of every text file of the project but this one, whose
    own examples of citations are not citations.
    """
    this_file = Path(__file__).resolve()
    for path in sorted(_project_files()):
        if path == this_file or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        yield path.relative_to(ROOT).as_posix(), text


def test_every_numbered_heading_has_its_stable_anchor() -> None:
    text = DESIGN.read_text(encoding="utf-8")
    anchored = ANCHOR.findall(text)
    assert all(anchor == heading for anchor, heading in anchored), [pair for pair in anchored if pair[0] != pair[1]]
    assert {heading for _, heading in anchored} == design_sections()


def test_every_design_citation_names_a_section_the_design_has() -> None:
    sections = design_sections()
    missing: list[str] = []
    for path, text in project_text_files():
        if path == "docs/design.md":
            body = text.split(MAP_ANCHOR)[0]
            cited = [(line, listed) for line, listed in ((body.count("\n", 0, m.start()) + 1, m.group(1)) for m in LISTED.finditer(body))]
        else:
            cited = list(cited_sections(text))
        missing += [f"{path}:{line}: design §{section}" for line, section in cited if section not in sections]
    assert not missing, "citations of sections docs/design.md does not have:\n" + "\n".join(missing)


def test_no_file_cites_the_original_architecture_by_section() -> None:
    remaining: dict[str, list[str]] = {}
    for path, content in project_text_files():
        if path != "docs/design.md":
            for line, text in uncited_section_marks(content):
                remaining.setdefault(path, []).append(f"{path}:{line}: {text}")
    deferred = {path: len(lines) for path, lines in remaining.items() if path in DEFERRED_IN_DEPLOYED_CONTENT}
    undeferred = [line for path, lines in remaining.items() if path not in DEFERRED_IN_DEPLOYED_CONTENT for line in lines]
    assert not undeferred, "section citations that are not design citations (convert with docs/design.md §12):\n" + "\n".join(undeferred)
    assert deferred == DEFERRED_IN_DEPLOYED_CONTENT, "the deferred citations in deployed content changed: update DEFERRED_IN_DEPLOYED_CONTENT"


def test_the_map_points_only_at_sections_the_design_has() -> None:
    table = DESIGN.read_text(encoding="utf-8").split(MAP_ANCHOR)[1]
    rows = [line.split("|") for line in table.splitlines() if line.startswith("|")][2:]
    targets = [LISTED.findall(row[3]) for row in rows]
    assert rows and all(targets), "every row of the map names a design section"
    assert {section for listed in targets for section in listed} <= design_sections()


def test_the_checks_catch_what_they_are_for() -> None:
    text = 'x = 1  # seed §4.1 says so\n"""design §4.2 and §4.3, design §9.9–§4.4"""\nplatform§team\n'
    assert list(uncited_section_marks(text)) == [(1, "x = 1  # seed §4.1 says so")]
    assert list(cited_sections(text)) == [(2, "4.2"), (2, "4.3"), (2, "9.9"), (2, "4.4")]
    assert "9.9" not in design_sections()


def test_without_git_the_same_files_are_read_but_hidden_directories() -> None:
    def hidden(relative: str) -> bool:
        return any(part.startswith(".") and part != ".github" for part in relative.split("/")[:-1])

    walked = {path.relative_to(ROOT).as_posix() for path in _walk_visible()}
    listed = {path.relative_to(ROOT).as_posix() for path in _project_files() if path.is_file()}
    assert not any(hidden(path) for path in walked)
    assert {path for path in listed if not hidden(path)} <= walked
