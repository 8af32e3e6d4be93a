"""Realistic mutations of the prod plan, each one violation, and the harness that runs the policy pack
over each in two shapes: the plan as the engine hands it to the pack at `pulumi up` (every output
known, secrets in plaintext) and as a first `pulumi preview` (`build_plan(preview=True)`: outputs
of the resources to create unknown).

A mutation is what a careless change or a deliberate evasion would do to the plan (design §3 and §4, and
issue 10's classes), applied to the plan JSON the way the engine would see it: a literal has no
property dependency, a value computed from a resource has one, and in the preview shape a value
computed from a resource to be created is unknown (so a change inside such a value is invisible
there, as it is to the engine). A mutation is caught when the pack reports a mandatory violation
that the unmutated plan does not have, naming a resource the mutation changed, added or names as
the one the rule judges (`Edit.target`).
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, cast

from pulumi_policy import EnforcementLevel

from review import policy as harness
from review.mocks import generated_password
from review.plan import build_plan_revealed, stack_config
from review.policy import load_pack_config, pack_config_for, plan_resources, run_policies
from tests.unit.conftest import planned

STACK = "prod"
SHAPES = ("up", "preview")
UNKNOWN = "[unknown]"
CLASSES = {
    "careless": "a careless change the pack had rules for",
    "secrets": "Fidelity to the engine: secrets found by where values come from",
    "secrets-in-files": "Secrets in files and boot data",
    "identity": "Identity, not presence",
    "open-to-internet": "Identity: open to the internet is the union of the ranges",
    "coverage": "Coverage that published rule sets have",
}
"""Issue 10's classes, by which the catch rate is reported."""

Plan = dict[str, Any]
State = dict[str, Any]


class Edit:
    """A plan being mutated. The steps are the base plan's, shared by every mutation: a step is
    copied the first time a mutation touches it, so the base stays as built, and the pack's view of
    an untouched resource can be reused (`shared_engine_props`).
    """

    def __init__(self, base: Plan, shape: str, stack: str = STACK) -> None:
        self.shape = shape
        self.stack = stack
        self.steps: list[dict[str, Any]] = list(base["steps"])
        self.targets: list[str] = []
        """URNs of the resources the mutation changed, added or names as the one judged."""
        self._copied: set[str] = set()

    @property
    def preview(self) -> bool:
        return self.shape == "preview"

    def _index(self, name: str, typ: str | None) -> int:
        found = [i for i, step in enumerate(self.steps) if step["urn"].endswith(f"::{name}") and typ in (None, step["newState"]["type"])]
        if len(found) != 1:
            raise KeyError(f"{name} ({typ}): {len(found)} steps")
        return found[0]

    def urn(self, name: str, typ: str | None = None) -> str:
        """The URN of the plan's resource `name` (of type `typ` where names are shared)."""
        return str(self.steps[self._index(name, typ)]["urn"])

    def state(self, name: str, typ: str | None = None) -> State:
        """The new state of the resource `name`, copied for this mutation, which targets it."""
        index = self._index(name, typ)
        urn = self.steps[index]["urn"]
        if urn not in self._copied:
            self.steps[index] = copy.deepcopy(self.steps[index])
            self._copied.add(urn)
        self.target(urn)
        return cast(State, self.steps[index]["newState"])

    def inputs(self, name: str, typ: str | None = None) -> dict[str, Any]:
        return cast(dict[str, Any], self.state(name, typ)["inputs"])

    def target(self, urn: str) -> None:
        """Names a resource a violation may name to catch this mutation."""
        if urn not in self.targets:
            self.targets.append(urn)

    def set(self, name: str, key: str, value: Any, *, deps: Sequence[str] = (), typ: str | None = None) -> None:
        """Sets input `key` of `name` to `value`, computed from the resources `deps` (none: a literal)."""
        state = self.state(name, typ)
        state["inputs"][key] = value
        dependencies = cast(dict[str, list[str]], state.setdefault("propertyDependencies", {}))
        if deps:
            dependencies[key] = sorted(set(deps))
            state["dependencies"] = sorted(set(state["dependencies"]) | set(deps))
        else:
            dependencies.pop(key, None)

    def depend(self, name: str, key: str, *urns: str, typ: str | None = None) -> None:
        """Adds `urns` to what input `key` of `name` was computed from."""
        state = self.state(name, typ)
        dependencies = cast(dict[str, list[str]], state.setdefault("propertyDependencies", {}))
        dependencies[key] = sorted(set(dependencies.get(key, [])) | set(urns))
        state["dependencies"] = sorted(set(state["dependencies"]) | set(urns))

    def add(self, typ: str, name: str, inputs: dict[str, Any], *, like: str, deps: Mapping[str, Sequence[str]] | None = None, protect: bool = False) -> str:
        """A new resource `name` created next to the plan's resource `like` (same parent, provider;
        the one of type `typ` where several share the name)."""
        shared = [step for step in self.steps if step["urn"].endswith(f"::{like}")]
        sibling = next((step for step in shared if step["newState"]["type"] == typ), shared[0])
        chain = sibling["urn"].split("::")[2].rsplit("$", 1)[0]
        urn = f"urn:pulumi:{self.stack}::dpc::{chain}${typ}::{name}"
        dependencies = {key: sorted(set(found)) for key, found in (deps or {}).items()}
        state = {
            "urn": urn,
            "type": typ,
            "custom": True,
            "parent": sibling["newState"]["parent"],
            "inputs": inputs,
            "protect": protect,
            "dependencies": sorted({u for found in dependencies.values() for u in found}),
            "propertyDependencies": dependencies,
            "provider": sibling["newState"]["provider"],
        }
        self.steps.append({"op": "create", "urn": urn, "provider": sibling["provider"], "newState": state})
        self._copied.add(urn)
        self.target(urn)
        return urn

    def remove(self, name: str, typ: str | None = None) -> None:
        """Leaves the resource out of the plan (a change that stops creating it)."""
        del self.steps[self._index(name, typ)]

    def computed(self, value: str) -> str:
        """A value computed from a resource the first preview creates: unknown there."""
        return UNKNOWN if self.preview else value

    def password(self, name: str) -> str:
        """What a value computed from the generated password `name` is: plaintext at `up` (the
        mocks' value), unknown at a first preview."""
        return self.computed(generated_password(name, 32))

    def edit_text(self, name: str, key: str, change: Callable[[str], str], encoding: str, typ: str | None = None) -> None:
        """Changes a rendered text (a config's data, user data) in its encoding ("plain", "base64",
        "gzip"); an unknown text stays unknown: the change inside it is invisible to that preview.
        """
        inputs = self.inputs(name, typ)
        value = inputs[key]
        if value == UNKNOWN:
            return
        if encoding == "gzip":
            inputs[key] = base64.b64encode(gzip.compress(change(gzip.decompress(base64.b64decode(value)).decode()).encode(), mtime=0)).decode()
        elif encoding == "base64":
            inputs[key] = base64.b64encode(change(base64.b64decode(value).decode()).encode()).decode()
        else:
            inputs[key] = change(value)

    def plan(self) -> Plan:
        """The mutated plan; a touched state that records outputs shows its inputs there too."""
        for step in self.steps:
            state = step.get("newState") or {}
            if step["urn"] in self._copied and isinstance(state.get("outputs"), dict):
                state["outputs"] = {**state["outputs"], **state["inputs"]}
        return {"steps": self.steps, "changeSummary": {"create": len(self.steps)}}


Apply = Callable[[Edit], None]


@dataclass(frozen=True)
class Mutation:
    """One realistic change that breaks one rule."""

    name: str
    klass: str
    evasion: bool
    apply: Apply = field(repr=False)
    why: str = ""
    note: str = ""
    """Why the pack may not see it, where that is known (the docstring's further lines)."""


MUTATIONS: list[Mutation] = []


GCP_STACK = "gcp-prod"
GCP_MUTATIONS: list[Mutation] = []
"""The catalogue of the GCP prod plan (`GCP_STACK`), judged apart so that the AWS catalogue's rates stay its own."""


def mutation(klass: str, *, evasion: bool = False, into: list[Mutation] = MUTATIONS) -> Callable[[Apply], Apply]:
    """Registers a mutation (in the AWS catalogue, or `into` another); its name is the function's, its
    reason the docstring's first line."""
    assert klass in CLASSES, klass

    def register(apply: Apply) -> Apply:
        why, _, note = (apply.__doc__ or "").strip().partition("\n")
        into.append(Mutation(apply.__name__.strip("_").replace("_", " "), klass, evasion, apply, why, " ".join(note.split())))
        return apply

    return register


SERVICE = "docker:index/service:Service"
CONFIG = "docker:index/serviceConfig:ServiceConfig"
INSTANCE = "aws:ec2/instance:Instance"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
PASSWORD = "random:index/randomPassword:RandomPassword"
BUCKET = "aws:s3/bucket:Bucket"
OWNED = {"CostCenter": "database-platform", "Environment": "prod", "Owner": "platform-team", "Service": "postgres"}
"""The required tags, for a resource a mutation adds."""
LITERAL = "Zq7xN4vR2mK8pW3tY6bH9cJ5"
"""A password a person typed in: shaped like the generated ones."""


def _container(edit: Edit, service: str) -> dict[str, Any]:
    return cast(dict[str, Any], edit.inputs(f"prod-database-{service}", SERVICE)["taskSpec"]["containerSpec"])


def _onto_data_net(edit: Edit, service: str, renamed: str | None = None) -> None:
    """Attaches the service to data-net, as a service references a network (by id, with the network
    in the taskSpec's property dependencies), under a new name if `renamed`."""
    inputs = edit.inputs(f"prod-database-{service}", SERVICE)
    inputs["name"] = renamed or inputs["name"]
    inputs["taskSpec"]["networksAdvanceds"].append({"id": edit.computed("data-net-id")})
    edit.depend(f"prod-database-{service}", "taskSpec", edit.urn("prod-database-data-net"), typ=SERVICE)


def _tags(edit: Edit, name: str, typ: str | None = None) -> dict[str, Any]:
    return cast(dict[str, Any], edit.inputs(name, typ)["tags"])


def _cloud_config(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode()


def _launch_template(edit: Edit, name: str, user_data: str, *, user_data_from: Sequence[str] = (), **inputs: Any) -> str:
    """A launch template for more workers next to the compute component's machines, with user data
    (base64, as the template takes it; computed from `user_data_from`, else literal) and the worker group."""
    group = edit.urn("prod-network-worker-sg")
    template = {
        "namePrefix": name,
        "imageId": "ami-401e1a2be029672a1",
        "instanceType": "r6i.2xlarge",
        "userData": user_data,
        "vpcSecurityGroupIds": [edit.computed("sg-770968487585d085f")],
        "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
        "tags": {"CostCenter": "database-platform", "Environment": "prod", "Owner": "platform-team", "Service": "postgres", "Role": "worker"},
        **inputs,
    }
    deps = {"vpcSecurityGroupIds": [group], **({"userData": list(user_data_from)} if user_data_from else {})}
    return edit.add("aws:ec2/launchTemplate:LaunchTemplate", name, template, like="prod-compute-worker-2", deps=deps)


def _role_policy(edit: Edit, role: str, statement: dict[str, Any]) -> None:
    """A new inline policy with one statement on the role `role` (a literal document, known at preview)."""
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    edit.add(
        ROLE_POLICY,
        f"{role}-extra",
        {"role": edit.computed(f"{role}-1a2b3c4d"), "policy": document},
        like=role,
        deps={"role": [edit.urn(role, "aws:iam/role:Role")]},
    )


def _ingress(edit: Edit, name: str, group: str, port: int, **source: Any) -> str:
    rule = {
        "ipProtocol": "tcp",
        "fromPort": port,
        "toPort": port,
        "securityGroupId": edit.computed("sg-1"),
        "description": name,
        "tags": {"CostCenter": "database-platform", "Environment": "prod", "Owner": "platform-team", "Service": "postgres", "Name": name},
        **source,
    }
    return edit.add(INGRESS, name, rule, like="prod-network-manager-in-tcp5432-from-clients0", deps={"securityGroupId": [edit.urn(group)]})


# --- careless changes the pack had rules for -------------------------------------------------------


@mutation("careless")
def _unencrypted_data_volume(edit: Edit) -> None:
    """A data volume created unencrypted."""
    edit.set("prod-storage-worker-1-data", "encrypted", False)
    edit.set("prod-storage-worker-1-data", "kmsKeyId", None)


@mutation("careless")
def _data_volume_unprotected(edit: Edit) -> None:
    """A prod data volume that a `pulumi destroy` would delete."""
    edit.state("prod-storage-worker-2-wal")["protect"] = False


@mutation("careless")
def _owner_tag_dropped(edit: Edit) -> None:
    """A resource without its Owner tag."""
    del _tags(edit, "prod-network-vpc")["Owner"]


@mutation("careless")
def _ssh_to_workers_from_the_vpc(edit: Edit) -> None:
    """SSH into the database machines from the whole VPC rather than from the bastion."""
    _ingress(edit, "prod-network-worker-in-tcp22-from-vpc", "prod-network-worker-sg", 22, cidrIpv4="10.20.0.0/16")


@mutation("careless")
def _metadata_v1_allowed(edit: Edit) -> None:
    """IMDSv1 left on (httpTokens optional)."""
    edit.inputs("prod-compute-app-1", INSTANCE)["metadataOptions"]["httpTokens"] = "optional"


@mutation("careless")
def _flow_log_of_rejects_only(edit: Edit) -> None:
    """Flow logs cut to rejected traffic (judged on the network they record)."""
    edit.set("prod-network-flow-log", "trafficType", "REJECT")
    edit.target(edit.urn("prod-network-vpc"))


@mutation("careless")
def _bucket_public_access_allowed(edit: Edit) -> None:
    """The backup bucket's public access block relaxed (judged on the bucket)."""
    edit.set("prod-storage-backups-public-access", "blockPublicPolicy", False)
    edit.target(edit.urn("prod-storage-backups", BUCKET))


@mutation("careless")
def _bucket_policy_without_tls(edit: Edit) -> None:
    """The backup bucket's TLS-only policy dropped (judged on the bucket)."""
    edit.remove("prod-storage-backups-tls-only")
    edit.target(edit.urn("prod-storage-backups", BUCKET))


@mutation("careless")
def _grafana_on_data_net(edit: Edit) -> None:
    """Grafana attached to data-net."""
    _onto_data_net(edit, "grafana")


# --- secrets by where values come from -------------------------------------------------------------


@mutation("secrets")
def _superuser_password_in_patroni_env(edit: Edit) -> None:
    """The superuser's generated password passed to Patroni as an environment variable."""
    _container(edit, "patroni-1").setdefault("env", {})["PATRONI_SUPERUSER_PASSWORD"] = edit.password("prod-database-postgres-superuser-password")
    edit.depend("prod-database-patroni-1", "taskSpec", edit.urn("prod-database-postgres-superuser-password", PASSWORD), typ=SERVICE)


@mutation("secrets", evasion=True)
def _password_under_an_innocent_name(edit: Edit) -> None:
    """A generated password in an environment variable whose name says nothing."""
    _container(edit, "pgbouncer").setdefault("env", {})["PGB_SETTING_A"] = edit.password("prod-database-pgbouncer-auth-password")
    edit.depend("prod-database-pgbouncer", "taskSpec", edit.urn("prod-database-pgbouncer-auth-password", PASSWORD), typ=SERVICE)


@mutation("secrets", evasion=True)
def _password_in_a_service_label(edit: Edit) -> None:
    """A generated password as a service label's value."""
    edit.inputs("prod-database-redis", SERVICE)["labels"].append({"label": "dpc.checksum", "value": edit.password("prod-database-redis-password")})
    edit.depend("prod-database-redis", "labels", edit.urn("prod-database-redis-password", PASSWORD), typ=SERVICE)


@mutation("secrets")
def _redis_config_rendered_with_its_password(edit: Edit) -> None:
    """redis.conf rendered with the generated password, as a Swarm config."""
    password = edit.password("prod-database-redis-password")
    data = password if edit.preview else base64.b64encode(f"port 0\nrequirepass {password}\n".encode()).decode()
    edit.set("prod-database-config-redis-conf", "data", data, deps=[edit.urn("prod-database-redis-password", PASSWORD)], typ=CONFIG)


@mutation("secrets", evasion=True)
def _password_in_a_plain_parameter(edit: Edit) -> None:
    """A generated password copied into an SSM String parameter with an innocent name."""
    source = edit.urn("prod-database-app-user-password", PASSWORD)
    inputs = {"name": "/dpc/prod-swarm/app-settings", "type": "String", "value": edit.password("prod-database-app-user-password")}
    edit.add("aws:ssm/parameter:Parameter", "prod-swarm-app-settings", inputs, like="prod-swarm-worker-token", deps={"value": [source]})


@mutation("secrets", evasion=True)
def _password_copied_into_a_tag(edit: Edit) -> None:
    """A generated password as a tag's value."""
    _tags(edit, "prod-storage-worker-3-data")["Checksum"] = edit.password("prod-database-replication-password")
    edit.depend("prod-storage-worker-3-data", "tags", edit.urn("prod-database-replication-password", PASSWORD))


@mutation("secrets")
def _password_in_a_launch_templates_user_data(edit: Edit) -> None:
    """A launch template whose user data exports a generated password."""
    password = edit.password("prod-database-replication-password")
    user_data = password if edit.preview else base64.b64encode(f"#!/bin/sh\nexport REPLICATION={password}\n".encode()).decode()
    _launch_template(edit, "prod-compute-worker-template", user_data, user_data_from=[edit.urn("prod-database-replication-password", PASSWORD)])


@mutation("secrets", evasion=True)
def _password_as_an_image_build_argument(edit: Edit) -> None:
    """A generated password passed to an image build as an argument (kept in the image's history)."""
    edit.inputs("prod-database-image-services")["build"]["args"] = {"SEED": edit.password("prod-database-secret-naming-key")}
    edit.depend("prod-database-image-services", "build", edit.urn("prod-database-secret-naming-key", PASSWORD))


@mutation("secrets", evasion=True)
def _deploy_key_in_a_machines_user_data(edit: Edit) -> None:
    """The deploy key's private half written into a manager's user data.

    At a first preview the user data is unknown (it holds the key's public half, computed from the
    key), so the pack cannot see this there: the secret policy names the machine among those it
    could not judge (advisory), and at `up`, before the machine is created, it refuses it.
    """
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n"
    entry = "write_files:\n- path: /root/.ssh/id_ed25519\n  content: |\n    " + key.replace("\n", "\n    ") + "\n"
    edit.edit_text("prod-compute-manager-2", "userDataBase64", lambda text: text + entry, "gzip", typ=INSTANCE)


@mutation("secrets")
def _password_in_a_containers_environment(edit: Edit) -> None:
    """A one-off container (a migration job) given the superuser's password in its environment."""
    source = edit.urn("prod-database-postgres-superuser-password", PASSWORD)
    inputs = {"name": "migrate", "image": "postgres@sha256:" + "1" * 64, "envs": [f"PGPASSWORD={edit.password('prod-database-postgres-superuser-password')}"]}
    edit.add("docker:index/container:Container", "prod-database-migrate", inputs, like="prod-database-redis", deps={"envs": [source]})


# --- secrets in files and boot data ----------------------------------------------------------------


@mutation("secrets-in-files")
def _redis_password_on_its_command_line(edit: Edit) -> None:
    """redis-server started with --requirepass and a typed-in password."""
    _container(edit, "redis")["args"] += ["--requirepass", LITERAL]


@mutation("secrets-in-files", evasion=True)
def _redis_password_inside_a_shell_command(edit: Edit) -> None:
    """redis-server started through `sh -c`, its masterauth inside the script."""
    _container(edit, "redis")["args"] = ["sh", "-c", f"exec redis-server /etc/dpc/redis.conf --masterauth {LITERAL}"]


@mutation("secrets-in-files")
def _password_in_a_health_check(edit: Edit) -> None:
    """A Redis health check that authenticates with `redis-cli -a`."""
    _container(edit, "redis")["healthcheck"] = {"tests": ["CMD", "redis-cli", "-a", LITERAL, "ping"], "interval": "10s"}


@mutation("secrets-in-files")
def _url_with_a_password_in_the_environment(edit: Edit) -> None:
    """The Redis exporter pointed at a URL that carries the password."""
    _container(edit, "redis-exporter")["env"]["REDIS_ADDR"] = f"rediss://:{LITERAL}@redis:6379"


@mutation("secrets-in-files")
def _cloud_access_key_in_the_environment(edit: Edit) -> None:
    """The backup agent given a static AWS access key."""
    _container(edit, "backup").setdefault("env", {})["AWS_ACCESS_KEY_ID"] = "AKIAIOSFODNN7EXAMPLE"


@mutation("secrets-in-files")
def _haproxy_stats_auth_in_its_config(edit: Edit) -> None:
    """HAProxy's statistics credentials written into haproxy.cfg instead of their secret."""
    enable = "    stats enable\n"
    auth = f"{enable}    stats auth admin:{LITERAL}\n"
    edit.edit_text("prod-database-config-haproxy-cfg", "data", lambda text: text.replace(enable, auth), "base64", typ=CONFIG)


@mutation("secrets-in-files")
def _pgbouncer_database_with_a_password(edit: Edit) -> None:
    """A PgBouncer database entry with the password in its connection string."""
    entry = f"reporting = host=haproxy port=5433 dbname=reporting user=app password={LITERAL}\n\n[users]"
    edit.edit_text("prod-database-config-pgbouncer-ini", "data", lambda text: text.replace("[users]", entry), "base64", typ=CONFIG)


@mutation("secrets-in-files", evasion=True)
def _pgbouncer_userlist_as_a_config(edit: Edit) -> None:
    """The PgBouncer user list shipped as a Swarm config rather than a secret."""
    data = base64.b64encode(f'"pgbouncer_auth" "SCRAM-SHA-256$4096:{LITERAL}$a2V5:c2VydmVy"\n'.encode()).decode()
    edit.add(CONFIG, "prod-database-config-pgbouncer-userlist", {"name": "pgbouncer-userlist", "data": data}, like="prod-database-config-pgbouncer-ini")


@mutation("secrets-in-files")
def _backup_cipher_passphrase_in_a_config(edit: Edit) -> None:
    """The pgBackRest cipher passphrase added to a member's pgbackrest.conf config."""
    edit.edit_text("prod-database-config-patroni-1-pgbackrest-conf", "data", lambda text: text + f"repo1-cipher-pass={LITERAL}\n", "base64", typ=CONFIG)


@mutation("secrets-in-files")
def _smtp_password_in_alertmanager_yaml(edit: Edit) -> None:
    """Alertmanager's SMTP password in alertmanager.yml."""
    edit.edit_text("prod-database-config-alertmanager-yml", "data", lambda text: f"global:\n  smtp_auth_password: {LITERAL}\n" + text, "base64", typ=CONFIG)


@mutation("secrets-in-files", evasion=True)
def _basic_auth_nested_in_prometheus_yaml(edit: Edit) -> None:
    """A scrape job with basic_auth and a typed-in password, nested in prometheus.yml."""
    job = f"\n- job_name: legacy\n  basic_auth:\n    username: scrape\n    password: '{LITERAL}'\n  static_configs:\n  - targets: ['legacy:9100']\n"
    edit.edit_text("prod-database-config-prometheus-yml", "data", lambda text: text + job, "base64", typ=CONFIG)


@mutation("secrets-in-files")
def _sql_role_with_a_literal_password(edit: Edit) -> None:
    """post-bootstrap.sh creating a role with a literal password."""
    role = f"CREATE ROLE reporting LOGIN PASSWORD '{LITERAL}';\nCREATE DATABASE"
    edit.edit_text("prod-database-config-post-bootstrap-sh", "data", lambda text: text.replace("CREATE DATABASE", role, 1), "base64", typ=CONFIG)


@mutation("secrets-in-files", evasion=True)
def _redis_acl_user_in_redis_conf(edit: Edit) -> None:
    """An ACL user with its password inline in redis.conf."""
    edit.edit_text("prod-database-config-redis-conf", "data", lambda text: text + f"user reporting on >{LITERAL} ~* +@read\n", "base64", typ=CONFIG)


@mutation("secrets-in-files")
def _tls_key_shipped_as_a_config(edit: Edit) -> None:
    """A TLS private key shipped as a Swarm config."""
    data = base64.b64encode(b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA\n-----END PRIVATE KEY-----\n").decode()
    edit.add(CONFIG, "prod-database-config-redis-key", {"name": "redis-key", "data": data}, like="prod-database-config-redis-conf")


@mutation("secrets-in-files")
def _token_in_a_plain_parameter(edit: Edit) -> None:
    """The Swarm worker join token's parameter made a plain String."""
    inputs = edit.inputs("prod-swarm-worker-token")
    inputs["type"] = "String"
    inputs["value"] = "pending"


@mutation("secrets-in-files", evasion=True)
def _chpasswd_in_gzip_base64_user_data(edit: Edit) -> None:
    """A launch template whose gzip+base64 user data sets root's password through cloud-init's chpasswd."""
    _launch_template(edit, "prod-compute-rescue-template", _cloud_config(f"#cloud-config\nchpasswd:\n  expire: false\n  list: |\n    root:{LITERAL}\n"))


@mutation("secrets-in-files", evasion=True)
def _chpasswd_users_in_base64_user_data(edit: Edit) -> None:
    """A launch template whose base64 user data sets a password through chpasswd's users list."""
    text = f"#cloud-config\nchpasswd:\n  users:\n  - name: admin\n    password: {LITERAL}\n    type: text\n"
    _launch_template(edit, "prod-compute-debug-template", base64.b64encode(text.encode()).decode())


@mutation("secrets-in-files", evasion=True)
def _password_piped_to_chpasswd_in_runcmd(edit: Edit) -> None:
    """A launch template whose runcmd pipes `user:password` to chpasswd."""
    _launch_template(edit, "prod-compute-break-glass-template", _cloud_config(f"#cloud-config\nruncmd:\n- echo 'admin:{LITERAL}' | chpasswd\n"))


@mutation("secrets-in-files", evasion=True)
def _encoded_file_in_write_files(edit: Edit) -> None:
    """A launch template writing a redis.conf with requirepass through a gz+b64 write_files entry."""
    inner = base64.b64encode(gzip.compress(f"requirepass {LITERAL}\n".encode(), mtime=0)).decode()
    text = f"#cloud-config\nwrite_files:\n- path: /etc/redis/redis.conf\n  encoding: gz+b64\n  content: {inner}\n"
    _launch_template(edit, "prod-compute-cache-template", _cloud_config(text))


@mutation("secrets-in-files", evasion=True)
def _multipart_user_data_with_an_export(edit: Edit) -> None:
    """A launch template whose MIME multipart user data has a base64 shell part exporting a password."""
    part = base64.b64encode(f"#!/bin/sh\nexport PGPASSWORD={LITERAL}\n".encode()).decode()
    text = (
        f'Content-Type: multipart/mixed; boundary="dpc"\nMIME-Version: 1.0\n\n--dpc\nContent-Type: text/x-shellscript\n'
        f"Content-Transfer-Encoding: base64\n\n{part}\n--dpc--\n"
    )
    _launch_template(edit, "prod-compute-multipart-template", base64.b64encode(text.encode()).decode())


@mutation("secrets-in-files", evasion=True)
def _base64_script_in_a_service_command(edit: Edit) -> None:
    """A service command that decodes and runs a base64 script holding a password."""
    script = base64.b64encode(f"#!/bin/sh\nexport PGPASSWORD={LITERAL}\nexec backup-agent --verbose --with-extra-logging\n".encode()).decode()
    _container(edit, "backup")["args"] = ["sh", "-c", f"echo {script} | base64 -d | sh"]


@mutation("secrets-in-files")
def _export_in_a_machines_user_data(edit: Edit) -> None:
    """A machine whose literal user data exports a database password."""
    inputs = {
        "ami": "ami-401e1a2be029672a1",
        "instanceType": "t3.large",
        "userData": f"#!/bin/sh\nexport PGPASSWORD={LITERAL}\n",
        "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
        "tags": {**OWNED, "Role": "app"},
    }
    edit.add(INSTANCE, "prod-compute-reporting-1", inputs, like="prod-compute-app-1")


# --- identity, not presence ------------------------------------------------------------------------


@mutation("identity", evasion=True)
def _root_disk_under_the_aws_managed_key(edit: Edit) -> None:
    """A machine's root disk under alias/aws/ebs."""
    edit.inputs("prod-compute-worker-1", INSTANCE)["rootBlockDevice"]["kmsKeyId"] = "alias/aws/ebs"
    edit.state("prod-compute-worker-1", INSTANCE)["propertyDependencies"].pop("rootBlockDevice", None)


@mutation("identity", evasion=True)
def _bucket_under_the_aws_managed_key(edit: Edit) -> None:
    """The backup bucket's encryption under alias/aws/s3."""
    rule = {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": "alias/aws/s3"}, "bucketKeyEnabled": True}
    edit.set("prod-storage-backups-encryption", "rules", [rule])


@mutation("identity", evasion=True)
def _volume_under_an_unrotated_key_of_its_own(edit: Edit) -> None:
    """A data volume under a new customer key of its own, never rotated."""
    key = edit.add(
        "aws:kms/key:Key",
        "prod-storage-side-key",
        {"description": "side key", "enableKeyRotation": False, "tags": OWNED},
        like="prod-storage-key",
        protect=True,
    )
    edit.set("prod-storage-backup-1-backups", "kmsKeyId", edit.computed("arn:aws:kms:us-east-1:123456789012:key/side"), deps=[key])


@mutation("identity", evasion=True)
def _worker_tagged_as_the_bastion_with_a_public_ip(edit: Edit) -> None:
    """A worker whose Role tag is copied from the bastion, then given a public address."""
    _tags(edit, "prod-compute-worker-3", INSTANCE)["Role"] = "bastion"
    edit.set("prod-compute-worker-3", "associatePublicIpAddress", True, typ=INSTANCE)


@mutation("identity", evasion=True)
def _worker_attached_to_the_bastion_group_too(edit: Edit) -> None:
    """A worker attached to the bastion's group as well as its own."""
    inputs = edit.inputs("prod-compute-worker-1", INSTANCE)
    inputs["vpcSecurityGroupIds"] = [*inputs["vpcSecurityGroupIds"], edit.computed("sg-bastion")]
    edit.depend("prod-compute-worker-1", "vpcSecurityGroupIds", edit.urn("prod-network-bastion-sg"), typ=INSTANCE)


@mutation("identity", evasion=True)
def _copy_of_the_worker_group(edit: Edit) -> None:
    """A second group tagged Role=worker, attached to a worker in place of its own."""
    inputs = {"description": "workers", "vpcId": edit.computed("vpc-1"), "tags": {**OWNED, "Role": "worker"}}
    group = edit.add(
        "aws:ec2/securityGroup:SecurityGroup", "prod-network-worker-sg-2", inputs, like="prod-network-worker-sg", deps={"vpcId": [edit.urn("prod-network-vpc")]}
    )
    edit.set("prod-compute-worker-2", "vpcSecurityGroupIds", [edit.computed("sg-copy")], deps=[group], typ=INSTANCE)


@mutation("identity", evasion=True)
def _elastic_ip_on_a_worker(edit: Edit) -> None:
    """An Elastic IP associated with a database machine."""
    inputs = {"domain": "vpc", "instance": edit.computed("i-worker-1"), "tags": OWNED}
    edit.add(
        "aws:ec2/eip:Eip",
        "prod-compute-worker-1-ip",
        inputs,
        like="prod-network-nat-us-east-1a-ip",
        deps={"instance": [edit.urn("prod-compute-worker-1", INSTANCE)]},
    )


@mutation("identity", evasion=True)
def _launch_template_with_a_public_ip(edit: Edit) -> None:
    """A worker launch template whose network interface takes a public address."""
    _launch_template(
        edit,
        "prod-compute-burst-template",
        base64.b64encode(b"#cloud-config\n").decode(),
        networkInterfaces=[{"associatePublicIpAddress": "true", "deviceIndex": 0}],
    )


@mutation("identity", evasion=True)
def _service_renamed_to_look_like_an_exporter(edit: Edit) -> None:
    """Grafana renamed postgres-exporter-4 and put on data-net, where exporters may not go either."""
    _onto_data_net(edit, "grafana", renamed="postgres-exporter-4")


@mutation("identity", evasion=True)
def _redis_renamed_patroni_on_data_net(edit: Edit) -> None:
    """Redis renamed patroni-4 to pass as a member, and attached to data-net."""
    _onto_data_net(edit, "redis", renamed="patroni-4")


@mutation("identity", evasion=True)
def _literal_network_on_a_service(edit: Edit) -> None:
    """PgBouncer attached to a network by an id typed in."""
    edit.inputs("prod-database-pgbouncer", SERVICE)["taskSpec"]["networksAdvanceds"].append({"id": "n7k2qv9x1m3b5c8d0f4g6h2j"})


# --- open to the internet --------------------------------------------------------------------------


@mutation("open-to-internet", evasion=True)
def _two_halves_of_the_internet(edit: Edit) -> None:
    """PostgreSQL opened to 0.0.0.0/1 and 128.0.0.0/1, each no /0."""
    edit.target(edit.urn("prod-network-manager-sg"))
    _ingress(edit, "prod-network-manager-in-tcp5432-from-low", "prod-network-manager-sg", 5432, cidrIpv4="0.0.0.0/1")
    _ingress(edit, "prod-network-manager-in-tcp5432-from-high", "prod-network-manager-sg", 5432, cidrIpv4="128.0.0.0/1")


@mutation("open-to-internet", evasion=True)
def _public_space_in_many_slices(edit: Edit) -> None:
    """PgBouncer opened in four /2 slices."""
    edit.target(edit.urn("prod-network-app-sg"))
    for index, cidr in enumerate(("0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2")):
        _ingress(edit, f"prod-network-app-in-tcp6432-from-slice{index}", "prod-network-app-sg", 6432, cidrIpv4=cidr)


@mutation("open-to-internet")
def _ipv6_everywhere(edit: Edit) -> None:
    """Redis opened to ::/0."""
    edit.target(edit.urn("prod-network-app-sg"))
    _ingress(edit, "prod-network-app-in-tcp6379-from-v6", "prod-network-app-sg", 6379, cidrIpv6="::/0")


@mutation("open-to-internet")
def _etcd_from_a_public_range(edit: Edit) -> None:
    """etcd's client port opened to a public /8."""
    _ingress(edit, "prod-network-manager-in-tcp2379-from-partner", "prod-network-manager-sg", 2379, cidrIpv4="52.0.0.0/8")


# --- coverage that published rule sets have --------------------------------------------------------


@mutation("coverage")
def _star_action_in_a_role_policy(edit: Edit) -> None:
    """The workers' role given Action "*" on "*"."""
    _role_policy(edit, "prod-compute-worker-identity", {"Effect": "Allow", "Action": "*", "Resource": "*"})


@mutation("coverage", evasion=True)
def _service_wildcard_on_every_resource(edit: Edit) -> None:
    """The app role given s3:* on every resource."""
    _role_policy(edit, "prod-compute-app-identity", {"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"})


@mutation("coverage", evasion=True)
def _privilege_escalation_in_a_role_policy(edit: Edit) -> None:
    """The backup role allowed to attach policies to itself and pass roles."""
    statement = {"Effect": "Allow", "Action": ["iam:AttachRolePolicy", "iam:PassRole"], "Resource": "arn:aws:iam::123456789012:role/*"}
    _role_policy(edit, "prod-compute-backup-identity", statement)


@mutation("coverage", evasion=True)
def _key_policy_open_to_everyone(edit: Edit) -> None:
    """The stack key's policy lets principal "*" decrypt."""
    anyone = {"Sid": "Anyone", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}
    edit.edit_text("prod-storage-key", "policy", lambda text: json.dumps({**json.loads(text), "Statement": [*json.loads(text)["Statement"], anyone]}), "plain")


@mutation("coverage")
def _log_group_without_retention(edit: Edit) -> None:
    """The flow logs' group kept forever."""
    del edit.inputs("prod-network-flow-logs")["retentionInDays"]


@mutation("coverage")
def _bucket_versioning_suspended(edit: Edit) -> None:
    """The backup bucket's versioning suspended (judged on the bucket)."""
    edit.inputs("prod-storage-backups-versioning")["versioningConfiguration"]["status"] = "Suspended"
    edit.target(edit.urn("prod-storage-backups", BUCKET))


@mutation("coverage")
def _bucket_lifecycle_disabled(edit: Edit) -> None:
    """The backup bucket's lifecycle rule disabled, old versions kept forever (judged on the bucket)."""
    edit.inputs("prod-storage-backups-lifecycle")["rules"][0]["status"] = "Disabled"
    edit.target(edit.urn("prod-storage-backups", BUCKET))


@mutation("coverage")
def _replication_dropped_in_prod(edit: Edit) -> None:
    """The prod backup bucket's replication left out (judged on the bucket, or the stack)."""
    edit.remove("prod-storage-backups-replication")
    edit.target(edit.urn("prod-storage-backups", BUCKET))
    edit.target("")


@mutation("coverage")
def _metadata_hop_limit_two(edit: Edit) -> None:
    """A worker's metadata hop limit raised to 2 (containers reach the instance's credentials)."""
    edit.inputs("prod-compute-worker-2", INSTANCE)["metadataOptions"]["httpPutResponseHopLimit"] = 2


@mutation("coverage")
def _image_by_tag_not_digest(edit: Edit) -> None:
    """Redis run from a public image by tag."""
    _container(edit, "redis")["image"] = "redis:7.2"


@mutation("coverage", evasion=True)
def _docker_socket_mounted_into_a_service(edit: Edit) -> None:
    """Prometheus given the Docker socket (root on the node)."""
    _container(edit, "prometheus")["mounts"].append({"type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock", "readOnly": True})


@mutation("coverage")
def _meaningless_owner_tag(edit: Edit) -> None:
    """A volume whose Owner tag is "n/a"."""
    _tags(edit, "prod-storage-backup-1-backups")["Owner"] = "n/a"


@mutation("coverage", evasion=True)
def _dash_as_a_cost_center(edit: Edit) -> None:
    """A bucket whose CostCenter tag is "-"."""
    _tags(edit, "prod-storage-backups", BUCKET)["CostCenter"] = "-"


SETTINGS: tuple[tuple[str, bool, str, str, str, str, Any], ...] = (
    ("careless", False, "worker with a public ip", "A database machine given a public address.", "prod-compute-worker-2", "associatePublicIpAddress", True),
    (
        "careless",
        False,
        "postgres open to the world",
        "The client rule into HAProxy opened to 0.0.0.0/0.",
        "prod-network-manager-in-tcp5432-from-clients0",
        "cidrIpv4",
        "0.0.0.0/0",
    ),
    (
        "careless",
        False,
        "ssh to the bastion from anywhere",
        "The bastion's SSH rule opened to the internet.",
        "prod-network-bastion-in-tcp22-from-admin0",
        "cidrIpv4",
        "0.0.0.0/0",
    ),
    ("careless", False, "data net unencrypted", "data-net without IPsec.", "prod-database-data-net", "options", {}),
    ("careless", False, "key rotation off", "The stack key's rotation turned off.", "prod-storage-key", "enableKeyRotation", False),
    (
        "careless",
        False,
        "default group opened",
        "The VPC's default group allows all inbound from itself (the AWS default).",
        "prod-network-default-sg-closed",
        "ingress",
        [{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}],
    ),
    ("careless", False, "short generated password", "A generated password shortened to 12 characters.", "prod-database-redis-password", "length", 12),
    (
        "identity",
        True,
        "volume under the aws managed key",
        "A data volume encrypted, but under alias/aws/ebs rather than the stack's key.",
        "prod-storage-worker-2-data",
        "kmsKeyId",
        "alias/aws/ebs",
    ),
    (
        "identity",
        True,
        "volume under another accounts key",
        "A data volume under a key ARN of another account, typed in.",
        "prod-storage-worker-3-wal",
        "kmsKeyId",
        "arn:aws:kms:us-east-1:210987654321:key/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab",
    ),
    (
        "identity",
        False,
        "bucket with s3 managed encryption",
        "The replica bucket encrypted with S3-managed keys (AES256).",
        "prod-storage-backups-replica-encryption",
        "rules",
        [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}],
    ),
    (
        "identity",
        True,
        "secure parameter under the aws managed key",
        "A SecureString parameter under alias/aws/ssm.",
        "prod-swarm-manager-token",
        "keyId",
        "alias/aws/ssm",
    ),
    (
        "identity",
        True,
        "machine attached to a literal group",
        "An app machine attached to a group id typed in, which no resource of the stack makes.",
        "prod-compute-app-2",
        "vpcSecurityGroupIds",
        ["sg-0123456789abcdef0"],
    ),
    (
        "open-to-internet",
        False,
        "internet facing load balancer",
        "The database load balancer made internet-facing while the stack lists no client CIDRs.",
        "prod-endpoint-nlb",
        "internal",
        False,
    ),
    ("coverage", False, "log group without encryption", "The flow logs' group without a KMS key.", "prod-network-flow-logs", "kmsKeyId", None),
    (
        "coverage",
        False,
        "load balancer without deletion protection",
        "The prod load balancer's deletion protection off.",
        "prod-endpoint-nlb",
        "enableDeletionProtection",
        False,
    ),
    ("coverage", False, "registry with mutable tags", "A registry whose tags can be overwritten.", "prod-registry-postgres", "imageTagMutability", "MUTABLE"),
    (
        "coverage",
        False,
        "registry without scanning",
        "A registry that does not scan pushed images.",
        "prod-registry-services",
        "imageScanningConfiguration",
        {"scanOnPush": False},
    ),
    (
        "coverage",
        False,
        "registry with aes256",
        "A registry encrypted with AES256 rather than the stack's key.",
        "prod-registry-services",
        "encryptionConfigurations",
        [{"encryptionType": "AES256"}],
    ),
    (
        "coverage",
        False,
        "plain parameter outside the stack key",
        "A SecureString parameter made without a key of its own (the account's default).",
        "prod-swarm-manager-address",
        "keyId",
        None,
    ),
)
"""Mutations that set one input of one resource to a literal: (class, evasion, name, why, resource,
input, value)."""


def _setting(resource: str, key: str, value: Any) -> Apply:
    return lambda edit: edit.set(resource, key, value)


MUTATIONS.extend(Mutation(name, klass, evasion, _setting(resource, key, value), why) for klass, evasion, name, why, resource, key, value in SETTINGS)



# --- the GCP prod plan -----------------------------------------------------------------------------

FIREWALL = "gcp:compute/firewall:Firewall"
GCP_INSTANCE = "gcp:compute/instance:Instance"
GCP_SECRET = "gcp:secretmanager/secret:Secret"
GCP_BUCKET = "gcp:storage/bucket:Bucket"
GCP_LABELS = {"cost_center": "database-platform", "environment": "prod", "owner": "platform-team", "service": "postgres"}


def _gcp(klass: str, *, evasion: bool = False) -> Callable[[Apply], Apply]:
    return mutation(klass, evasion=evasion, into=GCP_MUTATIONS)


def _firewall(edit: Edit, name: str, **inputs: Any) -> str:
    """A new INGRESS allow rule in the stack's network, next to the network component's rules."""
    rule = {"direction": "INGRESS", "priority": 1000, "network": edit.computed("https://www.googleapis.com/compute/v1/projects/p/global/networks/n"),
            "name": name, **inputs}
    return edit.add(FIREWALL, name, rule, like="gcp-prod-network-manager-in-tcp5432-from-clients",
                    deps={"network": [edit.urn("gcp-prod-network-vpc")]})


def _gcp_grant(edit: Edit, typ: str, name: str, inputs: dict[str, Any]) -> str:
    return edit.add(typ, name, inputs, like="gcp-prod-compute-worker-read-worker-token")


def _public_interface(edit: Edit, machine: str) -> None:
    interfaces = edit.inputs(machine, GCP_INSTANCE)["networkInterfaces"]
    interfaces[0]["accessConfigs"] = [{"networkTier": "PREMIUM"}]


@_gcp("careless")
def _gcp_postgres_open_to_the_world(edit: Edit) -> None:
    """The clients' rule into HAProxy opened to 0.0.0.0/0."""
    edit.set("gcp-prod-network-manager-in-tcp5432-from-clients", "sourceRanges", ["0.0.0.0/0"], typ=FIREWALL)


@_gcp("careless")
def _gcp_worker_with_an_external_address(edit: Edit) -> None:
    """A database machine given an external IP (an access config)."""
    _public_interface(edit, "gcp-prod-compute-worker-1")


@_gcp("careless")
def _gcp_disk_under_googles_key(edit: Edit) -> None:
    """A data disk created without the stack's key (Google-managed encryption)."""
    edit.set("gcp-prod-storage-worker-1-data", "diskEncryptionKey", None)


@_gcp("careless")
def _gcp_bucket_public_access_inherited(edit: Edit) -> None:
    """The backup bucket's public access prevention left to the project ("inherited")."""
    edit.set("gcp-prod-storage-backups", "publicAccessPrevention", "inherited", typ=GCP_BUCKET)


@_gcp("careless")
def _gcp_bucket_with_object_acls(edit: Edit) -> None:
    """The backup bucket's uniform bucket-level access off (object ACLs can make an object public)."""
    edit.set("gcp-prod-storage-backups", "uniformBucketLevelAccess", False, typ=GCP_BUCKET)


@_gcp("careless")
def _gcp_key_rotated_yearly(edit: Edit) -> None:
    """The stack key rotated once a year, not every 90 days."""
    edit.set("gcp-prod-storage-key", "rotationPeriod", "31536000s")


@_gcp("careless")
def _gcp_secure_boot_off(edit: Edit) -> None:
    """A manager booted without Secure Boot."""
    edit.inputs("gcp-prod-compute-manager-1", GCP_INSTANCE)["shieldedInstanceConfig"]["enableSecureBoot"] = False


@_gcp("careless")
def _gcp_os_login_off(edit: Edit) -> None:
    """OS Login turned off on an app node (SSH keys in metadata would let anyone in)."""
    edit.inputs("gcp-prod-compute-app-1", GCP_INSTANCE)["metadata"]["enable-oslogin"] = "FALSE"


@_gcp("careless")
def _gcp_serial_console_on(edit: Edit) -> None:
    """The interactive serial console enabled on a worker."""
    edit.inputs("gcp-prod-compute-worker-2", GCP_INSTANCE)["metadata"]["serial-port-enable"] = "TRUE"


@_gcp("careless")
def _gcp_instance_deletable(edit: Edit) -> None:
    """A prod manager's deletion protection off."""
    edit.set("gcp-prod-compute-manager-2", "deletionProtection", False, typ=GCP_INSTANCE)


@_gcp("careless")
def _gcp_auto_mode_network(edit: Edit) -> None:
    """The network made auto-mode (a subnetwork in every region, the default rules' ranges)."""
    edit.set("gcp-prod-network-vpc", "autoCreateSubnetworks", True)


@_gcp("careless")
def _gcp_flow_logs_off(edit: Edit) -> None:
    """The private subnetwork's flow logs turned off."""
    edit.set("gcp-prod-network-private", "logConfig", None)


@_gcp("careless")
def _gcp_endpoint_external(edit: Edit) -> None:
    """The PostgreSQL forwarding rule made external while the stack lists no client networks."""
    edit.set("gcp-prod-endpoint-postgres", "loadBalancingScheme", "EXTERNAL")


@_gcp("identity", evasion=True)
def _gcp_worker_also_tagged_bastion(edit: Edit) -> None:
    """A worker given the bastion's network tag as well (the bastion's SSH rule would apply to it)."""
    edit.inputs("gcp-prod-compute-worker-2", GCP_INSTANCE)["tags"].append("bastion")


@_gcp("identity", evasion=True)
def _gcp_worker_tagged_bastion_with_an_external_address(edit: Edit) -> None:
    """A worker carrying the bastion's tag and label, given an external IP: it still runs as the worker account."""
    inputs = edit.inputs("gcp-prod-compute-worker-3", GCP_INSTANCE)
    inputs["tags"] = ["bastion"]
    inputs["labels"]["role"] = "bastion"
    _public_interface(edit, "gcp-prod-compute-worker-3")


@_gcp("identity", evasion=True)
def _gcp_machine_as_another_projects_account(edit: Edit) -> None:
    """An app node running as a service account of another project, typed in."""
    edit.inputs("gcp-prod-compute-app-2", GCP_INSTANCE)["serviceAccount"]["email"] = "gcp-prod-compute-app@elsewhere.iam.gserviceaccount.com"


@_gcp("identity")
def _gcp_machine_as_the_default_account(edit: Edit) -> None:
    """A backup node running as the project's default compute account (Editor on the project)."""
    edit.inputs("gcp-prod-compute-backup-1", GCP_INSTANCE)["serviceAccount"]["email"] = "123456789012-compute@developer.gserviceaccount.com"


@_gcp("identity", evasion=True)
def _gcp_secret_replica_under_googles_key(edit: Edit) -> None:
    """A join token's replica without the stack's key, the dependency on the key kept."""
    edit.inputs("gcp-prod-swarm-worker-token", GCP_SECRET)["replication"]["userManaged"]["replicas"][0].pop("customerManagedEncryption")


@_gcp("identity", evasion=True)
def _gcp_bucket_under_a_key_that_never_rotates(edit: Edit) -> None:
    """The backup bucket under a new key of its own that does not rotate."""
    key = edit.add("gcp:kms/cryptoKey:CryptoKey", "gcp-prod-storage-other-key", {"purpose": "ENCRYPT_DECRYPT", "labels": GCP_LABELS},
                   like="gcp-prod-storage-key", protect=True)
    edit.depend("gcp-prod-storage-backups", "encryption", key, typ=GCP_BUCKET)


@_gcp("identity")
def _gcp_registry_under_a_literal_key(edit: Edit) -> None:
    """A repository naming a key by its id, typed in (computed from no key of this stack)."""
    edit.set("gcp-prod-registry-postgres", "kmsKeyName", "projects/other/locations/us-central1/keyRings/r/cryptoKeys/k")


@_gcp("open-to-internet", evasion=True)
def _gcp_postgres_open_in_two_halves(edit: Edit) -> None:
    """PostgreSQL on the managers opened to the two halves of the IPv4 space, in two rules."""
    for name, half in (("gcp-prod-network-lo", "0.0.0.0/1"), ("gcp-prod-network-hi", "128.0.0.0/1")):
        _firewall(edit, name, allows=[{"protocol": "tcp", "ports": ["5432"]}], targetTags=["manager"], sourceRanges=[half])


@_gcp("open-to-internet", evasion=True)
def _gcp_rule_with_no_source(edit: Edit) -> None:
    """A rule into PgBouncer that names no source at all (GCP then admits 0.0.0.0/0)."""
    _firewall(edit, "gcp-prod-network-pgbouncer", allows=[{"protocol": "tcp", "ports": ["6432"]}], targetTags=["app"])


@_gcp("open-to-internet", evasion=True)
def _gcp_health_check_ranges_to_pgbouncer(edit: Edit) -> None:
    """Google's health-check ranges let into PgBouncer (they may only reach 5432 on the managers)."""
    _firewall(edit, "gcp-prod-network-checks", allows=[{"protocol": "tcp", "ports": ["6432"]}], targetTags=["app"],
              sourceRanges=["35.191.0.0/16", "130.211.0.0/22"])


@_gcp("open-to-internet")
def _gcp_every_port_from_everywhere(edit: Edit) -> None:
    """Everything open to the workers from anywhere."""
    _firewall(edit, "gcp-prod-network-all", allows=[{"protocol": "all"}], targetTags=["worker"], sourceRanges=["0.0.0.0/0"])


@_gcp("careless")
def _gcp_etcd_from_the_whole_network(edit: Edit) -> None:
    """etcd opened to the whole network range, not only the managers and workers."""
    _firewall(edit, "gcp-prod-network-etcd", allows=[{"protocol": "tcp", "ports": ["2379"]}], targetTags=["manager"], sourceRanges=["10.60.0.0/16"])


@_gcp("identity", evasion=True)
def _gcp_patroni_api_on_every_machine(edit: Edit) -> None:
    """A rule naming no target (every machine of the network) for the Patroni API from the managers."""
    _firewall(edit, "gcp-prod-network-patroni", allows=[{"protocol": "tcp", "ports": ["8008"]}], sourceTags=["manager"])


@_gcp("careless")
def _gcp_ssh_from_the_admins_to_a_worker(edit: Edit) -> None:
    """SSH from the admins' range straight to the workers."""
    _firewall(edit, "gcp-prod-network-ssh-worker", allows=[{"protocol": "tcp", "ports": ["22"]}], targetTags=["worker"], sourceRanges=["203.0.113.0/28"])


@_gcp("careless")
def _gcp_bastion_ssh_from_anywhere(edit: Edit) -> None:
    """The bastion's SSH rule opened to the internet."""
    edit.set("gcp-prod-network-bastion-in-tcp22-from-admin", "sourceRanges", ["0.0.0.0/0"], typ=FIREWALL)


@_gcp("identity", evasion=True)
def _gcp_ssh_from_the_app_tag(edit: Edit) -> None:
    """The workers' SSH rule admitting the app nodes' tag besides the bastion's."""
    edit.inputs("gcp-prod-network-worker-in-tcp22-from-roles", FIREWALL)["sourceTags"].append("app")


@_gcp("coverage")
def _gcp_project_wide_secret_accessor(edit: Edit) -> None:
    """The workers' account given secretAccessor on the whole project (every secret, other stacks' too)."""
    _gcp_grant(edit, "gcp:projects/iAMMember:IAMMember", "gcp-prod-compute-worker-every-secret",
               {"project": "p", "role": "roles/secretmanager.secretAccessor", "member": "serviceAccount:gcp-prod-compute-worker@p.iam.gserviceaccount.com"})


@_gcp("coverage")
def _gcp_editor_for_a_node(edit: Edit) -> None:
    """The app nodes' account made project Editor."""
    _gcp_grant(edit, "gcp:projects/iAMMember:IAMMember", "gcp-prod-compute-app-editor",
               {"project": "p", "role": "roles/editor", "member": "serviceAccount:gcp-prod-compute-app@p.iam.gserviceaccount.com"})


@_gcp("coverage", evasion=True)
def _gcp_join_token_readable_by_everyone(edit: Edit) -> None:
    """The worker join token's read grant changed to allUsers."""
    edit.set("gcp-prod-compute-worker-read-worker-token", "member", "allUsers")


@_gcp("coverage")
def _gcp_images_public(edit: Edit) -> None:
    """The postgres repository readable by any Google account."""
    _gcp_grant(edit, "gcp:artifactregistry/repositoryIamBinding:RepositoryIamBinding", "gcp-prod-registry-postgres-public",
               {"repository": "gcp-prod-registry-postgres", "role": "roles/artifactregistry.reader", "members": ["allAuthenticatedUsers"]})


@_gcp("coverage")
def _gcp_key_usable_by_everyone(edit: Edit) -> None:
    """The stack key's encrypter/decrypter grant for a service agent changed to allUsers."""
    edit.set("gcp-prod-storage-key-compute-agent", "member", "allUsers")


@_gcp("coverage")
def _gcp_secret_replicated_automatically(edit: Edit) -> None:
    """The manager token replicated automatically, wherever Google chooses, under Google's key."""
    edit.inputs("gcp-prod-swarm-manager-token", GCP_SECRET)["replication"] = {"auto": {}}


@_gcp("coverage")
def _gcp_registry_tags_movable(edit: Edit) -> None:
    """The services repository's tags made mutable."""
    edit.set("gcp-prod-registry-services", "dockerConfig", {"immutableTags": False})


@_gcp("coverage")
def _gcp_backups_in_one_region(edit: Edit) -> None:
    """The prod backup bucket made regional (no geo copy)."""
    inputs = edit.inputs("gcp-prod-storage-backups", GCP_BUCKET)
    inputs.pop("customPlacementConfig")
    inputs["location"] = "US-CENTRAL1"


@_gcp("coverage")
def _gcp_backups_unversioned(edit: Edit) -> None:
    """The backup bucket's versioning off."""
    edit.set("gcp-prod-storage-backups", "versioning", {"enabled": False}, typ=GCP_BUCKET)


@_gcp("coverage")
def _gcp_disk_unprotected(edit: Edit) -> None:
    """A prod data disk that a `pulumi destroy` would delete."""
    edit.state("gcp-prod-storage-worker-2-data")["protect"] = False


@_gcp("coverage", evasion=True)
def _gcp_cost_center_n_a(edit: Edit) -> None:
    """A disk whose cost_center label is "n/a" as GCP labels write it ("n-a")."""
    edit.inputs("gcp-prod-storage-worker-3-wal")["labels"]["cost_center"] = "n-a"


@_gcp("coverage")
def _gcp_owner_label_dropped(edit: Edit) -> None:
    """A secret without its owner label."""
    del edit.inputs("gcp-prod-swarm-manager-address", GCP_SECRET)["labels"]["owner"]


@_gcp("secrets-in-files")
def _gcp_join_token_in_metadata(edit: Edit) -> None:
    """A worker's startup script exporting the join token's value instead of its secret's name."""
    edit.inputs("gcp-prod-compute-worker-1", GCP_INSTANCE)["metadata"]["startup-script"] = f"export DPC_JOIN_TOKEN='SWMTKN-1-{LITERAL}'\n"


# --- the harness -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What the pack made of one mutation in one shape."""

    mutation: Mutation
    shape: str
    caught_by: tuple[str, ...]
    """The policies that reported a new mandatory violation naming a target."""

    @property
    def caught(self) -> bool:
        return bool(self.caught_by)


@cache
def base_plan(shape: str, stack: str = STACK) -> Plan:
    """The prod plan in a shape, built once per session (the up plan is the one the other tests
    share): at `up` the engine hands the pack every value in plaintext (the revealed inputs), at a
    first preview the unknowns. The shared plan is left as it is; the steps are new.
    """
    plan, revealed = planned(stack) if shape == "up" else build_plan_revealed(stack, preview=True)
    steps = [{**step, "newState": {**step["newState"], "inputs": revealed.get(step["urn"], step["newState"]["inputs"])}} for step in plan["steps"]]
    return {**plan, "steps": steps}


@contextmanager
def shared_engine_props() -> Iterator[None]:
    """The harness's view of each resource's inputs (a protobuf round trip, half its time) made
    once per inputs object: the base plan's steps are shared by every mutation and never changed
    (`Edit` copies what it touches), and the policies only read what they are handed.
    """
    original = harness.engine_props
    made: dict[int, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}

    def shared(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        known = made.get(id(inputs))
        if known is None or known[0] is not inputs:
            known = made[id(inputs)] = (inputs, original(inputs))
        return known[1]

    harness.engine_props = shared
    try:
        yield
    finally:
        harness.engine_props = original


def _mandatory(plan: Plan, stack: str) -> set[tuple[str, str]]:
    config, _ = stack_config(stack)
    found = run_policies(plan_resources(plan), load_pack_config(pack_config_for(config)), config)
    return {(v.policy, v.urn) for v in found if v.level is EnforcementLevel.MANDATORY}


def judge(mutations: Sequence[Mutation] = MUTATIONS, shapes: Sequence[str] = SHAPES, stack: str = STACK) -> list[Outcome]:
    """Each mutation applied to each shape's base plan of `stack`, and what the pack made of it."""
    outcomes: list[Outcome] = []
    with shared_engine_props():
        for shape in shapes:
            base = base_plan(shape, stack)
            before = _mandatory(base, stack)
            for candidate in mutations:
                edit = Edit(base, shape, stack)
                candidate.apply(edit)
                new = _mandatory(edit.plan(), stack) - before
                outcomes.append(Outcome(candidate, shape, tuple(sorted({p for p, urn in new if urn in edit.targets}))))
    return outcomes


REQUIRED_RATE = 0.95
"""The share of a catalogue the pack must catch in each shape (issue 10)."""


def under_rate(outcomes: Sequence[Outcome], rate: float = REQUIRED_RATE) -> list[str]:
    """The shapes in which the pack caught less than `rate` of the mutations judged."""
    return [shape for (shape, klass), (caught, total) in rates(outcomes).items() if klass == "all" and caught < rate * total]


def catalogue_problems(outcomes: Sequence[Outcome], mutations: Sequence[Mutation], *, least: int = 40, evasions: int = 12) -> list[str]:
    """What a cloud's catalogue and its judging lack: at least `least` mutations named once, of the
    classes that matter, `evasions` of them evasions, every one judged in both shapes, each shape's
    rate at REQUIRED_RATE or more.
    """
    problems = under_rate(outcomes)
    if len(mutations) < least or len({m.name for m in mutations}) != len(mutations) or sum(m.evasion for m in mutations) < evasions:
        problems.append(f"{len(mutations)} mutations, {len({m.name for m in mutations})} names, {sum(m.evasion for m in mutations)} evasions")
    missing = {"careless", "identity", "open-to-internet", "coverage"} - {m.klass for m in mutations}
    problems.extend(f"no {klass} mutation" for klass in sorted(missing))
    counts = rates(outcomes)
    problems.extend(f"{shape}: {counts.get((shape, 'all'), (0, 0))[1]} judged" for shape in SHAPES if counts.get((shape, "all"), (0, 0))[1] != len(mutations))
    return problems


def blocking(stack: str, shape: str, *, advisory_too: bool = False) -> list[str]:
    """What the pack reports on the stack's unmutated plan in a shape that would stop a deployment:
    its mandatory findings (every finding with `advisory_too`, for a stack whose config makes all advisory).
    """
    config, _ = stack_config(stack)
    found = run_policies(plan_resources(base_plan(shape, stack)), load_pack_config(pack_config_for(config)), config)
    return [f"{v.policy}: {v.message}" for v in found if v.level is EnforcementLevel.MANDATORY or advisory_too]


def rates(outcomes: Sequence[Outcome]) -> dict[tuple[str, str], tuple[int, int]]:
    """(caught, total) per (shape, class), with class "all" for the shape's total."""
    table: dict[tuple[str, str], tuple[int, int]] = {}
    for outcome in outcomes:
        for key in ((outcome.shape, outcome.mutation.klass), (outcome.shape, "all")):
            caught, total = table.get(key, (0, 0))
            table[key] = (caught + outcome.caught, total + 1)
    return table


def table(outcomes: Sequence[Outcome]) -> str:
    """The catch rate per shape and class, then every miss with its reason, as the suite prints it."""
    counts = rates(outcomes)
    shapes = sorted({shape for shape, _ in counts}, key=SHAPES.index)
    lines = [f"{'class':<18}" + "".join(f"{shape:>18}" for shape in shapes)]
    for klass in [*CLASSES, "all"]:
        cells = [counts.get((shape, klass)) for shape in shapes]
        if any(cells):
            lines.append(f"{klass:<18}" + "".join(f"{c}/{t} {100 * c / t:5.1f} %".rjust(18) if t else "".rjust(18) for c, t in (x or (0, 0) for x in cells)))
    misses = [o for o in outcomes if not o.caught]
    lines.append(f"missed ({len(misses)}):" if misses else "missed: none")
    lines.extend(
        f"  [{o.shape}] {o.mutation.klass}: {o.mutation.name} — {o.mutation.why}" + (f"\n      {o.mutation.note}" if o.mutation.note else "") for o in misses
    )
    return "\n".join(lines)
