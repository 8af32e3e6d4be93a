"""A small Docker Engine API client over a unix socket: just the calls the local run makes.

The Engine API rather than the `docker` CLI, because the bodies it takes are exactly what
`dpc.swarm_spec` produces (and what pulumi-docker sends), so what runs is what was translated.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

API_VERSION = "v1.41"
"""Docker 20.10's API, which Debian 12's docker.io serves; newer engines accept it too."""

REQUEST_TIMEOUT = 60.0


class EngineError(RuntimeError):
    """An Engine API call that failed, with the engine's own message."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(self.timeout)
        connection.connect(str(self._socket_path))
        self.sock = connection


class Engine:
    """One Docker engine, by its socket."""

    def __init__(self, socket_path: Path, name: str = "") -> None:
        self.socket_path = socket_path
        self.name = name or str(socket_path)

    @property
    def host(self) -> str:
        """The engine's address as the docker CLI takes it (`-H` / DOCKER_HOST)."""
        return f"unix://{self.socket_path}"

    def call(self, method: str, path: str, body: Any = None, query: Mapping[str, str] | None = None, timeout: float = REQUEST_TIMEOUT) -> Any:
        """One request; the decoded JSON answer (None when the answer is empty)."""
        url = f"/{API_VERSION}{path}" + (f"?{urlencode(query)}" if query else "")
        connection = _UnixConnection(self.socket_path, timeout)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            connection.request(method, url, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.status >= 400:
            try:
                message = str(json.loads(data).get("message", data.decode(errors="replace")))
            except ValueError:
                message = data.decode(errors="replace")
            raise EngineError(method, path, response.status, message)
        return json.loads(data) if data.strip() else None

    def get(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        """GET `path`: its decoded answer."""
        return self.call("GET", path, query=query)

    def post(self, path: str, body: Any = None, query: Mapping[str, str] | None = None, timeout: float = REQUEST_TIMEOUT) -> Any:
        """POST `body` to `path`: its decoded answer."""
        return self.call("POST", path, body, query, timeout)

    def delete(self, path: str, query: Mapping[str, str] | None = None) -> None:
        """DELETE `path`."""
        self.call("DELETE", path, query=query)

    def responds(self) -> bool:
        """Whether an engine answers on the socket."""
        try:
            connection = _UnixConnection(self.socket_path, 2.0)
            connection.request("GET", "/_ping")
            ok = connection.getresponse().status == 200
            connection.close()
            return ok
        except OSError:
            return False

    def wait_until_responding(self, timeout: float) -> None:
        """Until the engine answers (one just started); TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self.responds():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the Docker engine at {self.socket_path} did not answer within {timeout:.0f}s")
            time.sleep(0.2)

    def filtered(self, path: str, **filters: list[str]) -> list[dict[str, Any]]:
        """A list endpoint with the Engine API's JSON filters."""
        result: list[dict[str, Any]] = self.get(path, {"filters": json.dumps(filters)} if filters else None)
        return result

    def by_name(self, kind: str, name: str) -> dict[str, Any] | None:
        """The swarm object (secret, config, network, service) of exactly this name, if any."""
        return next((item for item in self.filtered(f"/{kind}", name=[name]) if _name_of(item) == name), None)

    def image_present(self, reference: str) -> bool:
        """Whether the engine holds the image."""
        try:
            self.get(f"/images/{quote(reference, safe='')}/json")
            return True
        except EngineError as error:
            if error.status == 404:
                return False
            raise


def _name_of(item: Mapping[str, Any]) -> str:
    """A swarm object's name: in its Spec (secrets, configs, services) or at the top (networks)."""
    spec: Any = item.get("Spec")
    if isinstance(spec, dict) and "Name" in spec:
        return str(spec["Name"])  # pyright: ignore[reportUnknownArgumentType]
    return str(item.get("Name", ""))
