"""When the rolling-update phases put the Swarm back as the program defines it: after the phases
end or fail, never after an interrupt (the suite's bound, Ctrl-C), whose teardown removes the lab
and whose kill grace a minutes-long restore would overrun."""

from __future__ import annotations

from typing import cast

import pytest

from benchmarks import rolling_update
from engine.lab import Deployment

LAB = cast(Deployment, object())


@pytest.fixture
def restores(monkeypatch: pytest.MonkeyPatch) -> list[Deployment]:
    calls: list[Deployment] = []
    monkeypatch.setattr(rolling_update, "restored", calls.append)
    return calls


def test_the_swarm_is_restored_after_the_phases_end(restores: list[Deployment]) -> None:
    with rolling_update.restoring(LAB):
        pass
    assert restores == [LAB]


def test_the_swarm_is_restored_after_a_phase_fails(restores: list[Deployment]) -> None:
    with pytest.raises(AssertionError), rolling_update.restoring(LAB):
        raise AssertionError("a member lost a row")
    assert restores == [LAB]


def test_an_interrupted_run_leaves_the_restore_to_the_teardown(restores: list[Deployment]) -> None:
    with pytest.raises(KeyboardInterrupt), rolling_update.restoring(LAB):
        raise KeyboardInterrupt("signal 15")
    assert restores == []
