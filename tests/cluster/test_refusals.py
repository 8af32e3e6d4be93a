"""What the running cluster refuses, each for the reason it must (design §3.1, §3.3):

- a wrong password, straight to PostgreSQL, through HAProxy and through PgBouncer;
- a server whose certificate another CA signed: a client that trusts only its own CA does not
  connect, whatever the password;
- PgBouncer's certificate presented for a name it was not issued for (verify-full);
- etcd's client port without a client certificate, even with the right CA;
- Patroni's REST API changing the cluster (a switchover) without its credentials or with wrong ones.

Each refusal is checked against its message, so that a refusal for another reason (a timeout, a
closed port) fails the test.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from dpc.cluster import CA_SECRET, CLUSTER_SCOPE, Port, User, certificate_secret, key_secret
from dpc.render.postgres import PATRONI_API_USER
from engine.pki import issue
from tests.cluster.client import api_post, refusal
from tests.cluster.hosts import MANAGERS, WORKERS
from tests.cluster.smoke import CALL_TIMEOUT, Smoke

pytestmark = pytest.mark.cluster

WRONG_PASSWORD = "not-the-password"


@pytest.mark.parametrize("route", ["direct", "haproxy", "pgbouncer"])
def test_a_wrong_password_is_refused_on_every_route(smoke: Smoke, route: str) -> None:
    conninfo = {
        "direct": smoke.direct(WORKERS[0]),
        "haproxy": smoke.through_haproxy(Port.HAPROXY_PRIMARY),
        "pgbouncer": smoke.through_pgbouncer(User.APP, "app_user_password"),
    }[route]
    message = smoke.client.call(refusal, {**conninfo, "password": WRONG_PASSWORD}, timeout=CALL_TIMEOUT)
    assert ("SASL authentication failed" if route == "pgbouncer" else "password authentication failed") in message, message


@pytest.fixture(scope="module")
def foreign_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA the cluster never used."""
    path = tmp_path_factory.mktemp("foreign-ca") / "ca.pem"
    path.write_text(issue((), "a CA the cluster does not use", datetime.timedelta(hours=1))[CA_SECRET])
    return path


@pytest.mark.parametrize("route", ["direct", "haproxy", "pgbouncer"])
def test_a_server_certificate_from_another_ca_is_refused(smoke: Smoke, route: str, foreign_ca: Path) -> None:
    conninfo = {
        "direct": smoke.direct(WORKERS[0]),
        "haproxy": smoke.through_haproxy(Port.HAPROXY_PRIMARY),
        "pgbouncer": smoke.through_pgbouncer(User.APP, "app_user_password"),
    }[route]
    message = smoke.client.call(refusal, {**conninfo, "sslrootcert": str(foreign_ca)}, timeout=CALL_TIMEOUT)
    assert "certificate verify failed" in message, message


def test_pgbouncers_certificate_is_refused_for_another_name(smoke: Smoke) -> None:
    message = smoke.client.call(refusal, {**smoke.through_pgbouncer(User.APP, "app_user_password"), "host": "haproxy"}, timeout=CALL_TIMEOUT)
    assert 'does not match host name "haproxy"' in message, message


def test_etcd_refuses_a_client_without_a_certificate(smoke: Smoke) -> None:
    """etcdctl only times out (its gRPC client retries), so the reason is read from etcd's log;
    the same request with etcd-1's client certificate answers."""
    cluster = smoke.cluster
    host = cluster.hosts[MANAGERS[0]]
    member = cluster.layout.etcd[0]
    endpoint = f"https://{member.host}:{Port.ETCD_CLIENT}"
    request = [f"--endpoints={endpoint}", f"--cacert={host.paths.secret(CA_SECRET)}", "--command-timeout=3s", "get", f"/service/{CLUSTER_SCOPE}/leader"]
    log = cluster.log(MANAGERS[0], "etcd")
    logged = log.stat().st_size
    refused = cluster.network.run(MANAGERS[0], "etcd", ["etcdctl", *request], home=host.root, timeout=10)
    with log.open(errors="replace") as etcd_log:
        etcd_log.seek(logged)
        reasons = [line for line in etcd_log if "rejected connection" in line]
    client_certificate = [f"--cert={host.paths.secret(certificate_secret(member.name))}", f"--key={host.paths.secret(key_secret(member.name))}"]
    answered = cluster.network.run(MANAGERS[0], "etcd", ["etcdctl", *client_certificate, *request], home=host.root, timeout=10)
    assert refused.returncode != 0
    assert reasons and all("client didn't provide a certificate" in line for line in reasons), reasons
    assert answered.returncode == 0, answered.stderr


@pytest.mark.parametrize("credentials", [None, (PATRONI_API_USER, WRONG_PASSWORD)], ids=["none", "wrong-password"])
def test_patroni_refuses_a_switchover_without_its_credentials(smoke: Smoke, credentials: tuple[str, str] | None) -> None:
    leader = smoke.leader()
    url = f"https://{smoke.cluster.address(smoke.cluster.worker(leader['name']))}:{Port.PATRONI_API}/switchover"
    status, answer = smoke.client.call(api_post, url, smoke.cluster.ca_file, {"leader": leader["name"]}, credentials, timeout=CALL_TIMEOUT)
    assert status == 401, (status, answer)
    assert smoke.leader()["name"] == leader["name"]

