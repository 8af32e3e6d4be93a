"""Secret leaks, found by where a value comes from and by what it says: a property computed from a
generated password or key outside a secret store is a leak at `up` (plaintext) and at preview
(unknown) alike; a literal password in the syntaxes our files use is found, decoded from base64
and gzip; every file the program renders as a config or user data is clean, and every file it
renders as a Docker secret would be caught were it a config.
"""

from __future__ import annotations

import base64
import gzip
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel

from policies.secret_leaks import POLICIES, text_problems
from review.plan import stack_config
from review.policy import PlannedResource, Violation, plan_resources, run_policies
from tests.unit.policy_cases import STACK_CONFIG, res, violations_of
from tests.unit.policy_mutations import base_plan

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
ALLOWED = ["ETCD_INITIAL_CLUSTER_TOKEN", "initial-cluster-token"]
PROVENANCE = "no-generated-secret-outside-secret-stores"
PASSWORD = res("random:index/randomPassword:RandomPassword", "db-password", {"length": 32, "special": False})
KEY = res("tls:index/privateKey:PrivateKey", "deploy-key", {"algorithm": "ED25519"})
PLAINTEXT = "3aa8f2c26d698801f9d6c67bae9b3fca"
"""A generated password as the engine hands it to the pack at `up`: plaintext, no mask."""
PRIVATE_PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG0 deploy"
UNKNOWN = "[unknown]"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _gzip64(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode())).decode()


def _from(typ: str, name: str, inputs: dict[str, Any], prop: str, source: PlannedResource) -> list[PlannedResource]:
    """A resource whose property `prop` was computed from `source`, with the source."""
    return [source, res(typ, name, inputs, deps={prop: [source]})]


def _service_env(value: str) -> dict[str, Any]:
    return {"name": "app", "taskSpec": {"containerSpec": {"image": "app@sha256:1", "env": {"DATABASE_URL": value}}}}


def _mandatory(found: list[Violation]) -> set[str]:
    return {v.urn.split("::")[-1] for v in found if v.level is EnforcementLevel.MANDATORY}


# Each leak by provenance in both shapes: the value at `up` (plaintext) and at preview (unknown).
LEAKS: dict[str, tuple[str, str, str, Any]] = {
    "service env": ("docker:index/service:Service", "app", "taskSpec", lambda v: _service_env(f"postgres://app@db/app?sslmode=require&x={v}")),
    "docker config": ("docker:index/serviceConfig:ServiceConfig", "cfg", "data", lambda v: {"name": "cfg", "data": v}),
    "container env": ("docker:index/container:Container", "ctr", "envs", lambda v: {"image": "x@sha256:1", "envs": [f"DSN={v}"]}),
    "ssm String": ("aws:ssm/parameter:Parameter", "param", "value", lambda v: {"name": "/dpc/db", "type": "String", "value": v}),
    "a tag": ("aws:ebs/volume:Volume", "vol", "tags", lambda v: {"size": 10, "tags": {"Checksum": v}}),
    "user data": ("aws:ec2/instance:Instance", "node", "userData", lambda v: {"userData": v}),
    "launch template": ("aws:ec2/launchTemplate:LaunchTemplate", "lt", "userData", lambda v: {"userData": v}),
}


@pytest.mark.parametrize("shape", ["up", "preview"])
@pytest.mark.parametrize("leak", LEAKS)
def test_a_property_computed_from_a_generated_password_is_a_leak_in_both_shapes(leak: str, shape: str) -> None:
    typ, name, prop, inputs = LEAKS[leak]
    value = PLAINTEXT if shape == "up" else UNKNOWN
    found = violations_of(PROVENANCE, _from(typ, name, inputs(value), prop, PASSWORD))
    assert _mandatory(found) == {name}
    assert "computed from the generated password db-password" in found[0].message


@pytest.mark.parametrize("shape", ["up", "preview"])
def test_secret_stores_and_the_deployments_connection_may_take_generated_secrets(shape: str) -> None:
    value = PLAINTEXT if shape == "up" else UNKNOWN
    resources = [
        PASSWORD, KEY,
        res("docker:index/secret:Secret", "pw", {"name": "pw-1a2b", "data": value}, deps={"data": [PASSWORD], "name": [PASSWORD]}),
        res("aws:ssm/parameter:Parameter", "host-key", {"type": "SecureString", "value": value}, deps={"value": [KEY]}),
        res("command:remote:Command", "gate", {"connection": {"host": "10.0.0.1", "privateKey": value}, "create": "dpc-swarm-ready"},
            deps={"connection": [KEY]}),
        res("tls:index/selfSignedCert:SelfSignedCert", "ca", {"privateKeyPem": value}, deps={"privateKeyPem": [KEY]}),
        res("pulumi:providers:docker", "swarm", {"host": "ssh://admin@10.0.0.1"}, deps={"host": [KEY]}),
    ]
    assert violations_of(PROVENANCE, resources) == []


def test_a_key_may_give_user_data_its_public_half_and_not_its_private_one() -> None:
    public = _from("aws:ec2/instance:Instance", "node", {"userDataBase64": _gzip64(f"#cloud-config\nssh_authorized_keys:\n- {PUBLIC}\n")},
                   "userDataBase64", KEY)
    private = _from("aws:ec2/instance:Instance", "node", {"userDataBase64": _gzip64(f"#cloud-config\nwrite_files:\n- content: |\n    {PRIVATE_PEM}")},
                    "userDataBase64", KEY)
    assert violations_of(PROVENANCE, public) == []
    assert _mandatory(violations_of(PROVENANCE, private)) == {"node"}


def test_at_preview_user_data_from_a_key_is_left_unjudged_by_name_and_the_rest_judged() -> None:
    unknown = _from("aws:ec2/instance:Instance", "node", {"userData": UNKNOWN}, "userData", KEY)
    leak = res("aws:ssm/parameter:Parameter", "param", {"type": "String", "value": UNKNOWN}, deps={"value": [PASSWORD]})
    found = violations_of(PROVENANCE, [*unknown, PASSWORD, leak])
    assert _mandatory(found) == {"param"}
    notes = [v.message for v in found if v.level is EnforcementLevel.ADVISORY]
    assert len(notes) == 1 and unknown[1].urn in notes[0] and "can't run policy" in notes[0]


def test_a_generated_password_of_less_than_the_minimum_is_refused() -> None:
    short = res("random:index/randomPassword:RandomPassword", "short", {"length": 20})
    assert _mandatory(violations_of("generated-passwords-long-enough", [PASSWORD, short])) == {"short"}
    assert _mandatory(violations_of("generated-passwords-long-enough", [PASSWORD], {"minLength": 40})) == {"db-password"}


SYNTAXES = {
    "redis requirepass": "bind 0.0.0.0\nrequirepass 8f14e45fceea167a5a36dedd4bea2543\n",
    "redis masterauth": "masterauth hunter2hunter2\n",
    "redis ACL": "user default on >hunter2hunter2 ~* +@all\n",
    "haproxy stats auth": "listen stats\n    stats enable\n    stats auth admin:hunter2hunter2\n",
    "haproxy userlist": "userlist ops\n    user admin insecure-password hunter2\n",
    "haproxy crypt hash": "userlist ops\n    user admin password $6$salt$abcdefghijklmnop\n",
    "pgbouncer database": "[databases]\nmain = host=haproxy port=5432 dbname=main user=app password=hunter2\n",
    "pgbouncer userlist": '"app" "SCRAM-SHA-256$4096:abc=$def=:ghi="\n',
    "libpq quoted": "primary_conninfo = 'host=patroni-1 user=replicator password=''hunter2'''\n",
    "libpq in a URL query": "dsn: postgresql://db:5432/app?user=app&password=hunter2\n",
    "yaml": "postgresql:\n  authentication:\n    superuser:\n      username: postgres\n      password: hunter2\n",
    "shell export": "#!/bin/sh\nexport PGPASSWORD=hunter2\nexec psql\n",
    "sql": "CREATE ROLE app LOGIN PASSWORD 'hunter2';\n",
    "netrc": "machine registry.internal login ci password hunter2\n",
    "url with an empty user": "REDIS_URL=rediss://:hunter2@redis:6379/0\n",
    "cloud-init chpasswd list": "#cloud-config\nchpasswd:\n  expire: false\n  list: |\n    root:hunter2\n",
    "cloud-init chpasswd users": "#cloud-config\nchpasswd:\n  users:\n  - name: admin\n    password: hunter2\n    type: text\n",
    "cloud-init user passwd": "#cloud-config\nusers:\n- name: admin\n  plain_text_passwd: hunter2\n",
    "runcmd chpasswd": "#cloud-config\nruncmd:\n- echo 'root:hunter2' | chpasswd\n",
    "write_files gzip": "#cloud-config\nwrite_files:\n- path: /etc/redis.conf\n  encoding: gz+b64\n  content: " + _gzip64("requirepass hunter2\n") + "\n",
    "base64 in a script": "#!/bin/sh\necho " + _b64("#!/bin/sh\necho root:hunter2hunter2 | chpasswd\n" * 2) + " | base64 -d | sh\n",
    "mime multipart": "Content-Type: multipart/mixed; boundary=\"b\"\nMIME-Version: 1.0\n\n--b\nContent-Type: text/x-shellscript\n"
    "Content-Transfer-Encoding: base64\n\n" + _b64("#!/bin/sh\nexport DB_PASSWORD=hunter2\n") + "\n--b--\n",
    "private key": "tls:\n  key: |\n    " + PRIVATE_PEM,
    "a literal printed by a command substitution": "#!/bin/sh\nexport PGPASSWORD=$(echo aHVudGVyMg== | base64 -d)\n",
}


@pytest.mark.parametrize("syntax", SYNTAXES)
@pytest.mark.parametrize("wrapping", ["plain", "base64", "gzip+base64"])
def test_a_literal_password_is_found_in_each_syntax_our_files_use_however_wrapped(syntax: str, wrapping: str) -> None:
    text = SYNTAXES[syntax]
    wrapped = {"plain": text, "base64": _b64(text), "gzip+base64": _gzip64(text)}[wrapping]
    assert list(text_problems("file", wrapped, ALLOWED)), syntax


REFERENCES = {
    "redis include": "include /run/secrets/redis_auth\ntls-auth-clients optional\n",
    "haproxy file": "listen stats\n    stats enable\n    acl authorized http_auth(stats_users)\n",
    "pgbouncer auth": "[pgbouncer]\nauth_file = /run/secrets/userlist\nauth_type = scram-sha-256\nauth_user = pgbouncer_auth\n"
    "auth_query = SELECT username, password FROM pgbouncer.get_auth($1)\n",
    "libpq file": "dsn: host=db user=app passfile=/run/secrets/pgpass\n",
    "yaml file": "basic_auth:\n  username: prometheus\n  password_file: /run/secrets/metrics_password\n",
    "shell expansion": "#!/bin/sh\nexport PGPASSWORD=\"$(cat /run/secrets/pg)\"\nredis-cli -a \"$REDIS_PASSWORD\" ping\n",
    "template": "password: ${file}\n",
    "sql variable": "\\set app_password `cat /run/secrets/app`\nCREATE ROLE app LOGIN PASSWORD :'app_password';\n",
    "chpasswd random": "#cloud-config\nchpasswd:\n  list: |\n    root:RANDOM\n",
    "setting about passwords": "password_encryption = 'scram-sha-256'\n",
    "public key": f"#cloud-config\nssh_authorized_keys:\n- {PUBLIC}\n",
}


@pytest.mark.parametrize("reference", REFERENCES)
def test_a_reference_to_a_secret_is_no_leak(reference: str) -> None:
    assert list(text_problems("file", REFERENCES[reference], ALLOWED)) == []


SECRET_FILES = {"redis-acl", "pgbouncer-userlist.txt", "haproxy-stats-auth.cfg", "secrets.conf", "patroni-patroni-1.yml", "patroni-patroni-2.yml",
                "patroni-patroni-3.yml"}
"""The golden files the program renders into Docker secrets (test_render_database, test_render_backup):
each holds a password in its own syntax."""


@pytest.mark.parametrize("path", sorted(p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*") if p.is_file()))
def test_every_rendered_file_is_clean_as_a_config_unless_it_is_a_secret(path: str) -> None:
    found = list(text_problems(path, (GOLDEN / path).read_text(), ALLOWED))
    if Path(path).name in SECRET_FILES:
        assert found, f"{path} holds a password the scanner does not see"
    else:
        assert found == []


def test_a_password_in_a_plain_parameter_is_found_and_a_secure_one_is_not_read() -> None:
    plain = res("aws:ssm/parameter:Parameter", "p", {"name": "/dpc/prod/db-password", "type": "String", "value": "hunter2"})
    listed = res("aws:ssm/parameter:Parameter", "l", {"name": "/dpc/prod/images", "type": "String", "insecureValue": "a@sha256:1\nredis://:hunter2@r:6379"})
    secure = res("aws:ssm/parameter:Parameter", "s", {"name": "/dpc/prod/db-password", "type": "SecureString", "value": UNKNOWN})
    assert _mandatory(violations_of("no-secret-in-rendered-config", [plain, listed, secure])) == {"p", "l"}


def test_the_offline_mask_is_not_what_finds_a_leak() -> None:
    """The engine never shows "[secret]": a masked value under an innocent name is judged by its
    provenance, and passes the literal scan as any innocent value would."""
    masked = res("docker:index/service:Service", "app", _service_env("[secret]"))
    assert violations_of("no-secret-in-service-environment", [masked]) == []
    assert _mandatory(run_policies([PASSWORD, res("docker:index/service:Service", "app", _service_env("[secret]"), deps={"taskSpec": [PASSWORD]})],
                                   {"all": "disabled", PROVENANCE: "mandatory"}, STACK_CONFIG)) == {"app"}


@pytest.mark.parametrize("shape", ["up", "preview"])
def test_the_prod_plan_has_no_leak_in_either_shape_and_at_preview_says_which_machines_wait_for_up(shape: str) -> None:
    """At `up` (plaintext) nothing is reported; at a first preview the machines whose user data
    holds the deploy key's public half are named as not judged, and nothing is mandatory."""
    found = run_policies(plan_resources(base_plan(shape)), {"all": "disabled", **{p.name: "mandatory" for p in POLICIES}}, stack_config("prod")[0])
    assert _mandatory(found) == set()
    unjudged = [v.message for v in found if v.policy == PROVENANCE]
    if shape == "up":
        assert found == []
    else:
        machines = [s["urn"] for s in base_plan(shape)["steps"] if s["newState"]["type"] == "aws:ec2/instance:Instance"]
        assert len(unjudged) == 1 and len(machines) == 10 and all(urn in unjudged[0] for urn in machines)
