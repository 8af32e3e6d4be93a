"""The drill's writer (tests/cluster/drill.py) picks the writes that follow a fault by when each
statement was sent, not by when its connection opened: a connection that outlives a fault (a healed
partition) still counts once it commits again.
"""

from __future__ import annotations

from tests.cluster.drill import Ack, Writer


def test_writes_after_a_fault_are_those_sent_after_it_whatever_their_connection() -> None:
    writer = Writer("client", {}, "drill")
    writer.acknowledged.extend([Ack(1, sent_at=1.0, at=1.1), Ack(2, sent_at=4.9, at=12.0), Ack(3, sent_at=12.1, at=12.2)])

    assert [ack.row for ack in writer.acknowledged_after(5.0)] == [3]
    assert [ack.row for ack in writer.acknowledged_after(4.0)] == [2, 3]
