"""HAProxy: the read-write and read-only routes to the Patroni members, statistics and metrics.

Routing follows Patroni's REST API: a member is in the primary route while `GET /primary`
answers 200 and in the replica route while `GET /replica` does, checked over TLS against the
cluster CA. Database traffic stays TCP: the client's TLS session ends at PostgreSQL itself.

The main file is a plain Docker config; the statistics credentials are a second file
(`render_haproxy_stats_auth`, a Docker secret) loaded with another `-f`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from dpc.cluster import ClusterLayout, Port
from dpc.render import tls_files

STATS_USERLIST = "stats_users"
"""The userlist the secret fragment defines and the statistics page checks."""

STATS_USER = "admin"

DOCKER_DNS = "127.0.0.11:53"
"""Docker's embedded DNS server, which answers for Swarm service names inside every container."""

CHECK_SETTINGS = "inter 1s fastinter 500ms downinter 500ms rise 1 fall 2"
"""A member leaves a route after two failed checks 0.5 s apart and joins it after one good check,
made every half second while it is out (design §5.3).

One good check suffices because the answer is authoritative: Patroni answers `GET /primary` with
200 only while the member holds the leader key and runs as primary, so there is nothing to
confirm, and each extra check only adds its interval to every failover and switchover. Two
failed checks keep one slow answer from dropping a healthy primary. The cost is about nine TLS checks a second per
HAProxy across the three members (each is in one route and out of the other)."""


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _needs_dns(layout: ClusterLayout) -> bool:
    """Whether any member is named rather than addressed, and so resolved through Docker's DNS."""
    return not all(_is_address(member.host) for member in layout.patroni)


def _resolvers_section() -> list[str]:
    """Docker's DNS, queried at run time: a Patroni task rescheduled with a new address is found
    again without reloading HAProxy.
    """
    return [
        "resolvers docker",
        f"    nameserver docker {DOCKER_DNS}",
        "    resolve_retries 3",
        "    timeout resolve 1s",
        "    timeout retry 1s",
        "    hold valid 10s",
        "    hold other 10s",
        "    hold refused 10s",
        "    hold nx 10s",
        "    hold timeout 10s",
        "",
    ]


def _route(layout: ClusterLayout, name: str, port: int, health_path: str) -> list[str]:
    """A TCP route to the members whose Patroni answers 200 to `health_path`.

    The check verifies the member's certificate by the member's name, which its certificate always
    carries as a DNS name: HAProxy matches DNS names only, so an address would never match.
    """
    ca = tls_files(layout, "haproxy").ca
    resolvers = " resolvers docker resolve-prefer ipv4" if _needs_dns(layout) else ""
    servers = [
        f"    server {member.name} {member.host}:{Port.POSTGRES} check port {Port.PATRONI_API} check-ssl verify required ca-file {ca} verifyhost {member.name}"
        f"{resolvers}"
        for member in layout.patroni
    ]
    return [
        f"listen {name}",
        f"    bind {layout.haproxy.listen}:{port}",
        "    mode tcp",
        "    balance leastconn",
        "    option httpchk",
        f"    http-check send meth GET uri {health_path}",
        "    http-check expect status 200",
        f"    default-server {CHECK_SETTINGS} on-marked-down shutdown-sessions",
        *servers,
        "",
    ]


def render_haproxy(layout: ClusterLayout) -> str:
    """haproxy.cfg: the primary and replica routes, statistics behind authentication, and the
    built-in Prometheus exporter. Expects the statistics userlist from the secret fragment.
    """
    listen = layout.haproxy.listen
    lines = [
        "# Rendered by dpc.render.haproxy. Load with the statistics credentials: -f haproxy.cfg -f stats-auth.cfg",
        "global",
        "    log stdout format raw local0 info",
        "    maxconn 4000",
        "    ssl-default-server-options ssl-min-ver TLSv1.3",
        "",
        *(_resolvers_section() if _needs_dns(layout) else []),
        "defaults",
        "    mode tcp",
        "    log global",
        "    option tcplog",
        "    option dontlognull",
        "    option clitcpka",
        "    option srvtcpka",
        "    retries 2",
        "    timeout connect 4s",
        "    timeout client 30m",
        "    timeout server 30m",
        "    timeout check 3s",
        "    default-server init-addr last,libc,none",
        "",
        *_route(layout, "postgres_primary", Port.HAPROXY_PRIMARY, "/primary"),
        *_route(layout, "postgres_replicas", Port.HAPROXY_REPLICAS, "/replica"),
        "listen stats",
        f"    bind {listen}:{Port.HAPROXY_STATS}",
        "    mode http",
        "    log global",
        "    option httplog",
        "    timeout client 30s",
        "    timeout server 30s",
        f"    acl authorized http_auth({STATS_USERLIST})",
        '    http-request auth realm "HAProxy statistics" unless authorized',
        "    stats enable",
        "    stats uri /",
        "    stats refresh 10s",
        "    stats show-legends",
        "",
        "frontend metrics",
        f"    bind {listen}:{Port.HAPROXY_METRICS}",
        "    mode http",
        "    timeout client 30s",
        "    option dontlog-normal",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    http-request return status 404",
        "",
    ]
    return "\n".join(lines)


def _quoted(value: str) -> str:
    """A word in HAProxy's configuration taken literally: single quotes, which expand nothing; a
    single quote itself is written as an escaped character between quoted runs.
    """
    return "'" + value.replace("'", "'\\''") + "'"


def render_haproxy_stats_auth(secrets: Mapping[str, str]) -> str:
    """The secret fragment: the statistics page's userlist with its password."""
    password = _quoted(secrets["haproxy_stats_password"])
    return f"userlist {STATS_USERLIST}\n    user {STATS_USER} insecure-password {password}\n"

