"""Redis: the application cache, reachable over TLS 1.3 only, with a password.

Persistence: none. Redis here is a cache; its content can always be rebuilt from PostgreSQL, and
a restarted or rescheduled task (possibly on another app node, without the old disk) starting
empty is correct, while a snapshot could bring back entries that went stale meanwhile. Without
snapshots Redis never forks its heap, so its memory stays within maxmemory plus overhead.
Memory: maxmemory from the layout, least-recently-used eviction over all keys.

Clients authenticate by password (`default` user in the ACL file); they may present a
certificate of the cluster CA (`tls-auth-clients optional`), but application clients have none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from dpc.cluster import ClusterLayout, Port
from dpc.render import tls_files

ACL_SECRET = "redis_acl"
"""The Docker secret holding the ACL file."""


def render_redis(layout: ClusterLayout) -> str:
    """redis.conf (a plain Docker config): TLS only, no persistence, bounded memory."""
    tls = tls_files(layout, "redis")
    settings = [
        ("bind", "0.0.0.0"),
        ("protected-mode", "yes"),
        ("port", "0"),
        ("tls-port", str(Port.REDIS)),
        ("tls-cert-file", tls.cert),
        ("tls-key-file", tls.key),
        ("tls-ca-cert-file", tls.ca),
        ("tls-auth-clients", "optional"),
        ("tls-protocols", '"TLSv1.3"'),
        ("tls-prefer-server-ciphers", "yes"),
        ("aclfile", layout.paths.secret(ACL_SECRET)),
        ("maxmemory", f"{layout.cache_memory_mb}mb"),
        ("maxmemory-policy", "allkeys-lru"),
        ("save", '""'),
        ("appendonly", "no"),
        ("maxclients", "10000"),
        ("timeout", "0"),
        ("tcp-keepalive", "60"),
        ("loglevel", "notice"),
        ("logfile", '""'),
    ]
    return "\n".join(["# Rendered by dpc.render.redis.", *(f"{name} {value}" for name, value in settings)]) + "\n"


def render_redis_acl(secrets: Mapping[str, str]) -> str:
    """The ACL file: the `default` user with the cache's password, stored as its SHA-256 so the
    file never holds the password itself (it is still a Docker secret).
    """
    digest = hashlib.sha256(secrets["redis_password"].encode()).hexdigest()
    return f"user default on #{digest} ~* &* +@all\n"


def render_redis_exporter_passwords(secrets: Mapping[str, str]) -> str:
    """The redis exporter's password file (its `--redis.password-file`): JSON mapping the cache's
    TLS address to the password, so the password is neither an argument nor an environment value.
    """
    return json.dumps({redis_exporter_address(): secrets["redis_password"]}, sort_keys=True) + "\n"


def redis_exporter_address() -> str:
    """The address the exporter scrapes: the cache's service over TLS."""
    return f"rediss://redis:{Port.REDIS}"
