"""What the test does as a client on the cluster's network: SQL over libpq, Patroni's REST API
over HTTPS, and bounded waits for either to show the expected state.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import psycopg

T = TypeVar("T")

CONNECT_TIMEOUT = 5
API_POST_TIMEOUT = 30
"""Seconds a POST to Patroni may take: a switchover answers once it has happened."""
STATEMENT_TIMEOUT_MS = 10_000


STATEMENT_TIMEOUT = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
"""Startup options bounding each statement on PostgreSQL (not for PgBouncer, which refuses options)."""


def query(conninfo: Mapping[str, str | int], sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of one statement in its own connection and transaction (committed)."""
    with psycopg.connect(**{"connect_timeout": CONNECT_TIMEOUT, **conninfo}, autocommit=True) as connection:  # pyright: ignore[reportArgumentType]
        cursor = connection.execute(sql, params)  # pyright: ignore[reportArgumentType]
        return cursor.fetchall() if cursor.description else []


def refusal(conninfo: Mapping[str, str | int]) -> str:
    """The error a connection attempt ends with; a connection that succeeds is a failure."""
    try:
        psycopg.connect(**{"connect_timeout": CONNECT_TIMEOUT, **conninfo}).close()  # pyright: ignore[reportArgumentType]
    except psycopg.OperationalError as error:
        return str(error)
    raise AssertionError(f"connected, where the connection must be refused: {dict(conninfo, password='***')}")


def api_get(url: str, ca_file: Path) -> Any:
    """A JSON document from Patroni's REST API, its certificate verified against the cluster CA."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with urllib.request.urlopen(url, context=context, timeout=CONNECT_TIMEOUT) as response:
        return json.load(response)


def api_post(url: str, ca_file: Path, body: Mapping[str, Any], credentials: tuple[str, str] | None) -> tuple[int, str]:
    """A JSON request to Patroni's REST API (e.g. `POST /switchover`), authenticated with
    `credentials` (user, password; None: none) over TLS verified against the cluster CA; the status
    and the text Patroni answered, also when it refused (Patroni explains a refusal in the body).
    """
    headers = {"Content-Type": "application/json"}
    if credentials is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with urllib.request.urlopen(request, context=context, timeout=API_POST_TIMEOUT) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def wait_until(description: str, probe: Callable[[], T | None], *, timeout: float, interval: float = 0.5) -> T:
    """The first value `probe` returns that is not None, trying until `timeout` seconds; on timeout
    the error names what was awaited and the last thing the probe said.
    """
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        try:
            value = probe()
            if value is not None:
                return value
        except Exception as error:
            last = f"{type(error).__name__}: {error}"
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{description}: not within {timeout:.0f}s; last: {last}")
        time.sleep(interval)
