"""The full client path (PgBouncer → HAProxy → leader) carries pgbench's TPC-B and pools.

A short pgbench run from the client host through both PgBouncers, app_user over TLS as the
application connects, each transaction on a connection of its own (pgbench -C: TLS handshake and
SCRAM every time, the hardest case for a pooler). The tests check that:

- every transaction pgbench counted was committed on the leader, none failed;
- the PgBouncers carried them (their SHOW STATS counted at least as many transactions);
- they reused server connections: the leader saw far fewer new sessions than pgbench opened
  client connections, at most one per concurrent client and per auth_query slot.

Throughput is measured by benchmarks/client_path.py, not asserted here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import psycopg
import pytest

from benchmarks.client_path import ClientSide, Combined
from dpc.cluster import DATABASE_NAME, User
from dpc.render.pgbouncer import AUTH_QUERY_CONNECTIONS
from tests.cluster.client import CONNECT_TIMEOUT
from tests.cluster.hosts import APPS, Phases
from tests.cluster.smoke import CALL_TIMEOUT, Smoke

pytestmark = pytest.mark.cluster

CLIENTS = 4
"""pgbench clients in all, two per PgBouncer."""
SECONDS = 8
SCALE = 1
PGBENCH_TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")
OWN_SESSIONS = 2
"""Sessions the fixture itself opens on the leader's database between its two readings of the count."""


@dataclass(frozen=True)
class PooledRun:
    """A pgbench run through both PgBouncers and what the servers counted around it."""

    result: Combined
    history_rows: int
    """Rows in pgbench_history on the leader: one per committed TPC-B transaction."""
    pgbouncer_transactions: int
    """Transactions both PgBouncers' SHOW STATS counted during the run."""
    leader_sessions: int
    """Sessions the leader's pg_stat_database counted for the database during the run."""


def _transactions_counted(admin: Mapping[str, str | int]) -> int:
    """total_xact_count of the read-write database in a PgBouncer's SHOW STATS, found by column name."""
    with psycopg.connect(**admin, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as connection:  # pyright: ignore[reportArgumentType]
        cursor = connection.execute("SHOW STATS")
        names = [column.name for column in cursor.description or ()]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return sum(int(row["total_xact_count"]) for row in rows if row["database"] == DATABASE_NAME)


def _pgbouncer_transactions(smoke: Smoke) -> int:
    """Transactions both PgBouncers have counted so far."""
    total = 0
    for app in APPS:
        admin = smoke.through_pgbouncer(User.PGBOUNCER_AUTH, "pgbouncer_auth_password", app=app, database="pgbouncer")
        total += smoke.client.call(_transactions_counted, admin, timeout=CALL_TIMEOUT)
    return total


def _leader_sessions(smoke: Smoke, superuser: dict[str, str | int]) -> int:
    ((sessions,),) = smoke.sql(superuser, "SELECT sessions FROM pg_stat_database WHERE datname = %s", (DATABASE_NAME,))
    return int(sessions)


@pytest.fixture(scope="module")
def pooled_run(smoke: Smoke, phases: Phases) -> Iterator[PooledRun]:
    with phases.phase("client path: pgbench through both PgBouncers"):
        side = ClientSide(smoke)
        side.initialize(SCALE)
        (superuser,) = side.direct(User.SUPERUSER).targets
        transactions, sessions = _pgbouncer_transactions(smoke), _leader_sessions(smoke, superuser)
        result = side.run(side.pooled(), CLIENTS, SECONDS, threads=len(APPS), connect=True)
        ((history,),) = smoke.sql(superuser, "SELECT count(*) FROM pgbench_history")
        run = PooledRun(
            result, int(history), _pgbouncer_transactions(smoke) - transactions, _leader_sessions(smoke, superuser) - sessions
        )
    yield run
    smoke.sql(superuser, f"DROP TABLE {', '.join(PGBENCH_TABLES)}")


def test_every_transaction_through_the_full_path_commits_on_the_leader(pooled_run: PooledRun) -> None:
    assert pooled_run.result.failed == 0
    assert pooled_run.result.processed > 0
    assert pooled_run.history_rows == pooled_run.result.processed


def test_the_pgbouncers_carried_every_transaction(pooled_run: PooledRun) -> None:
    assert pooled_run.pgbouncer_transactions >= pooled_run.result.processed


def test_the_pgbouncers_reuse_server_connections(pooled_run: PooledRun) -> None:
    most_if_pooled = CLIENTS + len(APPS) * AUTH_QUERY_CONNECTIONS
    assert pooled_run.result.processed > 2 * most_if_pooled, "too few client connections to tell pooling from none"
    assert pooled_run.leader_sessions <= most_if_pooled + OWN_SESSIONS, pooled_run
