"""etcd: the configuration file of one member (`etcd --config-file`, etcd 3.4's YAML keys).

Clients (Patroni) and peers talk TLS and must present a certificate of the cluster CA; only the
metrics listener is plain HTTP, on its own port, for Prometheus.

Patroni's etcd3 client speaks the v3 API's JSON gateway. etcd's flag defaults it to on, but a key
missing from a config file counts as false, so the file names it.
"""

from __future__ import annotations

from typing import Any

from dpc.cluster import CLUSTER_SCOPE, ClusterLayout, Member, Port
from dpc.render import dump_yaml, tls_files

INITIAL_CLUSTER_TOKEN = f"{CLUSTER_SCOPE}-etcd"
"""Keeps the members of this cluster from joining another that happens to share their addresses."""

SNAPSHOT_COUNT = 10000
"""Raft entries between snapshots: etcd's default, ample for Patroni's few keys."""

AUTO_COMPACTION = {"auto-compaction-mode": "periodic", "auto-compaction-retention": "1h"}
"""Patroni rewrites its leader key every loop; keep an hour of history so the keyspace stays small."""

QUOTA_BACKEND_BYTES = 2 * 1024**3
"""etcd's default backend quota, written down so that it does not change with etcd's version."""


def _url(host: str, port: int) -> str:
    return f"https://{host}:{port}"


def etcd_config(layout: ClusterLayout, member: Member) -> dict[str, Any]:
    """The configuration of one member, as data."""
    tls = tls_files(layout, member.name)
    security = {"cert-file": tls.cert, "key-file": tls.key, "trusted-ca-file": tls.ca, "client-cert-auth": True}
    return {
        "name": member.name,
        "data-dir": layout.paths.etcd_data,
        "listen-client-urls": _url(member.listen, Port.ETCD_CLIENT),
        "advertise-client-urls": _url(member.host, Port.ETCD_CLIENT),
        "listen-peer-urls": _url(member.listen, Port.ETCD_PEER),
        "initial-advertise-peer-urls": _url(member.host, Port.ETCD_PEER),
        "listen-metrics-urls": f"http://{member.listen}:{Port.ETCD_METRICS}",
        "initial-cluster": ",".join(f"{peer.name}={_url(peer.host, Port.ETCD_PEER)}" for peer in layout.etcd),
        "initial-cluster-state": "new",
        "initial-cluster-token": INITIAL_CLUSTER_TOKEN,
        "client-transport-security": security,
        "peer-transport-security": security,
        "snapshot-count": SNAPSHOT_COUNT,
        **AUTO_COMPACTION,
        "quota-backend-bytes": QUOTA_BACKEND_BYTES,
        "enable-v2": False,
        "enable-grpc-gateway": True,
        "logger": "zap",
        "log-outputs": ["stderr"],
    }


def render_etcd(layout: ClusterLayout, member: Member) -> str:
    """The configuration file of one member (a plain Docker config: no secret in it)."""
    return dump_yaml(etcd_config(layout, member))
