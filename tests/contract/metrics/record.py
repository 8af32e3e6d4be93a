"""Record the metric names each exporter of the database stack really exposes, one catalog per
exporter (`<exporter>.txt` beside this script), so that tests can check every PromQL query of the
alert rules and dashboards against what is scraped rather than against what we believe is scraped.

How each catalog is made:

- postgres-exporter: Debian's prometheus-postgres-exporter scrapes a throwaway PostgreSQL 15
  primary and a streaming standby of it on loopback (so that pg_stat_replication has a row and
  replica-side metrics exist), with archive_mode on.
- redis-exporter: Debian's prometheus-redis-exporter against a loopback redis-server.
- haproxy: HAProxy's built-in Prometheus exporter (`http-request use-service prometheus-exporter`)
  with one frontend and one health-checked backend, on loopback.
- node-exporter: Debian's prometheus-node-exporter with a textfile directory.
- etcd: etcd's plain metrics listener (`--listen-metrics-urls`) of a one-member loopback etcd.
- prometheus: Prometheus scraping itself; its TSDB's metric names, so that the series Prometheus
  adds per target (`up`, `scrape_*`) are included.
- alertmanager: Alertmanager's own /metrics.
- patroni: the names Patroni's REST API writes in `do_GET_metrics` (patroni/api.py of the
  installed Patroni 4), read from the source: starting a Patroni only to list them adds nothing.
- cadvisor: not installable here; the names are transcribed from google/cadvisor's
  metrics/prometheus.go (container metrics, container spec and machine metrics).
- backup-agent: the textfile metrics the backup agent writes (the contract in dpc/cluster.py).

Run as root from the project root with the project's venv: `.venv/bin/python -m tests.contract.metrics.record`.
Everything listens on 127.0.0.1 only and is stopped afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from dpc.cluster import BACKUP_LAST_RUN_METRIC, BACKUP_LAST_SUCCESS_METRIC

CATALOG_DIR = Path(__file__).resolve().parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
LOOPBACK = "127.0.0.1"
WAIT_SECONDS = 30.0

CADVISOR_METRICS = (
    "cadvisor_version_info",
    "container_cpu_cfs_periods_total",
    "container_cpu_cfs_throttled_periods_total",
    "container_cpu_cfs_throttled_seconds_total",
    "container_cpu_load_average_10s",
    "container_cpu_system_seconds_total",
    "container_cpu_usage_seconds_total",
    "container_cpu_user_seconds_total",
    "container_fs_inodes_free",
    "container_fs_inodes_total",
    "container_fs_io_current",
    "container_fs_io_time_seconds_total",
    "container_fs_io_time_weighted_seconds_total",
    "container_fs_limit_bytes",
    "container_fs_read_seconds_total",
    "container_fs_reads_bytes_total",
    "container_fs_reads_merged_total",
    "container_fs_reads_total",
    "container_fs_sector_reads_total",
    "container_fs_sector_writes_total",
    "container_fs_usage_bytes",
    "container_fs_write_seconds_total",
    "container_fs_writes_bytes_total",
    "container_fs_writes_merged_total",
    "container_fs_writes_total",
    "container_last_seen",
    "container_memory_cache",
    "container_memory_failcnt",
    "container_memory_failures_total",
    "container_memory_rss",
    "container_memory_swap",
    "container_memory_usage_bytes",
    "container_memory_working_set_bytes",
    "container_network_receive_bytes_total",
    "container_network_receive_errors_total",
    "container_network_receive_packets_dropped_total",
    "container_network_receive_packets_total",
    "container_network_tcp_usage_total",
    "container_network_transmit_bytes_total",
    "container_network_transmit_errors_total",
    "container_network_transmit_packets_dropped_total",
    "container_network_transmit_packets_total",
    "container_network_udp_usage_total",
    "container_scrape_error",
    "container_spec_cpu_period",
    "container_spec_cpu_quota",
    "container_spec_cpu_shares",
    "container_spec_memory_limit_bytes",
    "container_spec_memory_reservation_limit_bytes",
    "container_spec_memory_swap_limit_bytes",
    "container_start_time_seconds",
    "container_tasks_state",
    "machine_cpu_cores",
    "machine_memory_bytes",
)
"""From google/cadvisor metrics/prometheus.go (the `name:` of every containerMetric, the
container_spec_* and machine_* descriptors); these names are unchanged up to cAdvisor v0.49."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def fetch(url: str) -> str:
    """The body of an HTTP GET, retried until the server answers or WAIT_SECONDS pass."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def exposed_names(exposition: str) -> set[str]:
    """The series names of a Prometheus text exposition (histograms keep their _bucket/_sum/_count)."""
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in exposition.splitlines() if line and not line.startswith("#")}


@contextmanager
def running(command: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A process for the duration of the block, terminated (then killed) afterwards."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def version_of(command: list[str]) -> str:
    """`program version`, from the program's own version output (no build dates, so catalogs are stable)."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = re.search(r"\d+\.\d+\.\d+[^\s,)]*", result.stdout + result.stderr)
    return f"{command[0]} {found.group(0) if found else 'unknown version'}"


def as_postgres(*command: str | Path) -> None:
    subprocess.run(["/usr/sbin/runuser", "-u", "postgres", "--", *map(str, command)], check=True, stdout=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})


def scrape_postgres_exporter(postgres_port: int) -> set[str]:
    """One exporter per server, as deployed: postgres_exporter 0.11 given several DSNs at once
    collects its per-collector metrics twice and answers every scrape with HTTP 500.
    """
    exporter_port = free_port()
    env = {"PATH": "/usr/bin:/bin", "DATA_SOURCE_NAME": f"postgresql://postgres@{LOOPBACK}:{postgres_port}/postgres?sslmode=disable"}
    with running(["prometheus-postgres-exporter", f"--web.listen-address={LOOPBACK}:{exporter_port}"], env=env):
        return exposed_names(fetch(f"http://{LOOPBACK}:{exporter_port}/metrics"))


def record_postgres(work: Path) -> tuple[str, set[str]]:
    """A primary with archiving on and a streaming standby of it, both scraped by one exporter."""
    shutil.chown(work, "postgres")
    primary, standby = work / "primary", work / "standby"
    primary_port, standby_port = free_port(), free_port()
    as_postgres(PG_BIN / "initdb", "-D", primary, "-A", "trust", "-U", "postgres")
    with (primary / "postgresql.conf").open("a") as conf:
        conf.write(f"listen_addresses='{LOOPBACK}'\nunix_socket_directories='{work}'\narchive_mode=on\narchive_command='/bin/true'\n")
    with (primary / "pg_hba.conf").open("a") as hba:
        hba.write(f"host replication postgres {LOOPBACK}/32 trust\n")
    as_postgres(PG_BIN / "pg_ctl", "-D", primary, "-o", f"-p {primary_port}", "-w", "start")
    try:
        as_postgres(PG_BIN / "pg_basebackup", "-h", LOOPBACK, "-p", str(primary_port), "-U", "postgres", "-D", standby, "-R", "-X", "stream")
        as_postgres(PG_BIN / "pg_ctl", "-D", standby, "-o", f"-p {standby_port}", "-w", "start")
        try:
            time.sleep(2)
            names = scrape_postgres_exporter(primary_port) | scrape_postgres_exporter(standby_port)
        finally:
            as_postgres(PG_BIN / "pg_ctl", "-D", standby, "-m", "fast", "-w", "stop")
    finally:
        as_postgres(PG_BIN / "pg_ctl", "-D", primary, "-m", "fast", "-w", "stop")
    return version_of(["prometheus-postgres-exporter", "--version"]), names


def record_redis(work: Path) -> tuple[str, set[str]]:
    redis_port, exporter_port = free_port(), free_port()
    redis = ["redis-server", "--bind", LOOPBACK, "--port", str(redis_port), "--save", "", "--appendonly", "no", "--dir", str(work)]
    exporter = ["prometheus-redis-exporter", f"--redis.addr=redis://{LOOPBACK}:{redis_port}", f"--web.listen-address={LOOPBACK}:{exporter_port}"]
    with running(redis), running(exporter):
        time.sleep(1)
        names = exposed_names(fetch(f"http://{LOOPBACK}:{exporter_port}/metrics"))
    return version_of(["prometheus-redis-exporter", "--version"]), names


def record_haproxy(work: Path) -> tuple[str, set[str]]:
    metrics_port, front_port, server_port = free_port(), free_port(), free_port()
    config = work / "haproxy.cfg"
    config.write_text(
        "global\n  log stdout format raw local0\n"
        "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n"
        f"frontend prometheus\n  mode http\n  bind {LOOPBACK}:{metrics_port}\n"
        "  http-request use-service prometheus-exporter if { path /metrics }\n"
        f"frontend postgres\n  bind {LOOPBACK}:{front_port}\n  default_backend primary\n"
        f"backend primary\n  server member-1 {LOOPBACK}:{server_port} check inter 1s\n"
    )
    with running(["haproxy", "-db", "-f", str(config)]):
        time.sleep(2)
        names = exposed_names(fetch(f"http://{LOOPBACK}:{metrics_port}/metrics"))
    return version_of(["haproxy", "-v"]), names


def record_node_exporter(work: Path) -> tuple[str, set[str]]:
    port, textfiles = free_port(), work / "textfile"
    textfiles.mkdir()
    (textfiles / "example.prom").write_text("# TYPE example gauge\nexample 1\n")
    command = ["prometheus-node-exporter", f"--web.listen-address={LOOPBACK}:{port}", f"--collector.textfile.directory={textfiles}"]
    with running(command):
        names = exposed_names(fetch(f"http://{LOOPBACK}:{port}/metrics")) - {"example"}
    return version_of(["prometheus-node-exporter", "--version"]), names


def record_etcd(work: Path) -> tuple[str, set[str]]:
    client, peer, metrics = (f"http://{LOOPBACK}:{free_port()}" for _ in range(3))
    command = [
        "etcd", "--name", "etcd-1", "--data-dir", str(work / "etcd"),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"etcd-1={peer}", "--listen-metrics-urls", metrics,
    ]  # fmt: skip
    with running(command):
        fetch(f"{metrics}/health")
        names = exposed_names(fetch(f"{metrics}/metrics"))
    return version_of(["etcd", "--version"]), names


def stored_names(prometheus: str) -> str:
    """The metric names in Prometheus's storage, once its first scrape of itself (`up`) is stored."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        values = fetch(f"{prometheus}/api/v1/label/__name__/values")
        if '"up"' in values or time.monotonic() > deadline:
            return values
        time.sleep(1)


def record_prometheus(work: Path) -> tuple[str, set[str]]:
    port = free_port()
    config = work / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['{LOOPBACK}:{port}']\n"
    )
    command = ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address={LOOPBACK}:{port}"]
    with running(command):
        fetch(f"http://{LOOPBACK}:{port}/-/ready")
        names = exposed_names(fetch(f"http://{LOOPBACK}:{port}/metrics"))
        values = stored_names(f"http://{LOOPBACK}:{port}")
    names |= set(re.findall(r'"([a-zA-Z_:][a-zA-Z0-9_:]*)"', values)) - {"status", "success", "data"}
    return version_of(["prometheus", "--version"]), names


def record_alertmanager(work: Path) -> tuple[str, set[str]]:
    port, cluster_port = free_port(), free_port()
    config = work / "alertmanager.yml"
    config.write_text("route:\n  receiver: none\nreceivers:\n  - name: none\n")
    command = [
        "prometheus-alertmanager", f"--config.file={config}", f"--storage.path={work / 'am'}",
        f"--web.listen-address={LOOPBACK}:{port}", f"--cluster.listen-address={LOOPBACK}:{cluster_port}",
    ]  # fmt: skip
    with running(command):
        names = exposed_names(fetch(f"http://{LOOPBACK}:{port}/metrics"))
    return version_of(["prometheus-alertmanager", "--version"]), names


def record_patroni(_work: Path) -> tuple[str, set[str]]:
    import patroni.api  # noqa: PLC0415  (only this recorder needs Patroni)
    from patroni.version import __version__  # noqa: PLC0415

    source = Path(patroni.api.__file__).read_text()
    return f"patroni {__version__} (patroni/api.py do_GET_metrics)", set(re.findall(r'"(patroni_[a-z_]+)\{', source))


def record_cadvisor(_work: Path) -> tuple[str, set[str]]:
    return "cAdvisor (google/cadvisor metrics/prometheus.go, transcribed)", set(CADVISOR_METRICS)


def record_backup_agent(_work: Path) -> tuple[str, set[str]]:
    return "the backup agent's textfile metrics (dpc/cluster.py)", {BACKUP_LAST_SUCCESS_METRIC, BACKUP_LAST_RUN_METRIC}


RECORDERS: dict[str, Callable[[Path], tuple[str, set[str]]]] = {
    "postgres-exporter": record_postgres,
    "redis-exporter": record_redis,
    "haproxy": record_haproxy,
    "node-exporter": record_node_exporter,
    "etcd": record_etcd,
    "prometheus": record_prometheus,
    "alertmanager": record_alertmanager,
    "patroni": record_patroni,
    "cadvisor": record_cadvisor,
    "backup-agent": record_backup_agent,
}


def write_catalog(exporter: str, source: str, names: set[str]) -> None:
    header = f"# {exporter}: metric names recorded by tests/contract/metrics/record.py from {source}\n"
    (CATALOG_DIR / f"{exporter}.txt").write_text(header + "".join(f"{name}\n" for name in sorted(names)))


def main() -> None:
    for exporter, recorder in RECORDERS.items():
        work = Path(tempfile.mkdtemp(prefix=f"dpc-metrics-{exporter}-"))
        os.chmod(work, 0o755)
        try:
            source, names = recorder(work)
        finally:
            with suppress(OSError):
                shutil.rmtree(work)
        if not names:
            raise SystemExit(f"{exporter}: no metric recorded")
        write_catalog(exporter, source, names)
        print(f"{exporter}: {len(names)} names ({source})")


if __name__ == "__main__":
    main()
