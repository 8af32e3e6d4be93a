"""The database stack in the recorded plan of every shipped stack: networks, services, secrets,
configs and images as the seed asks for them."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest

from dpc.cluster import PASSWORD_SECRETS, certificate_requests
from dpc.config import settings_from_stack_file
from dpc.database_files import plain_configs, secret_files
from dpc.services import BUILT_IMAGES, Uid, database_services
from dpc.settings import Settings
from dpc.tiers import TIERS
from dpc.topology import derive
from review.mocks import generated_password
from tests.plan_graph import PlanGraph, Resource
from tests.unit.conftest import plan_of

SERVICE = "docker:index/service:Service"
NETWORK = "docker:index/network:Network"
SECRET = "docker:index/secret:Secret"
CONFIG = "docker:index/serviceConfig:ServiceConfig"


def _services(graph: PlanGraph) -> dict[str, Resource]:
    return {s.inputs["name"]: s for s in graph.of_type(SERVICE)}


def _network_names(graph: PlanGraph) -> dict[str, str]:
    """Network resource id → overlay name."""
    return {n.id: n.inputs["name"] for n in graph.of_type(NETWORK)}


def test_the_four_overlay_networks_have_the_seeds_subnets_and_encryption(graph: PlanGraph) -> None:
    networks = {n.inputs["name"]: n.inputs for n in graph.of_type(NETWORK)}
    assert set(networks) == {"coordinator-net", "data-net", "app-net", "monitoring-net"}
    for tier in TIERS:
        inputs = networks[tier.network_name]
        assert inputs["driver"] == "overlay" and inputs["attachable"] is False
        assert inputs["ipamConfigs"] == [{"subnet": tier.subnet}]
        assert ("encrypted" in inputs.get("options", {})) is tier.encrypted, tier.network_name
    assert "encrypted" in networks["coordinator-net"]["options"] and "encrypted" in networks["data-net"]["options"]


def test_every_seed_service_is_deployed_with_its_replicas(graph: PlanGraph) -> None:
    services = _services(graph)
    replicas = {name: s.inputs["mode"].get("replicated", {}).get("replicas") for name, s in services.items()}
    assert {n: replicas[n] for n in ("etcd-1", "etcd-2", "etcd-3", "patroni-1", "patroni-2", "patroni-3")} == dict.fromkeys(
        ("etcd-1", "etcd-2", "etcd-3", "patroni-1", "patroni-2", "patroni-3"), 1
    )
    assert replicas["haproxy"] == 2 and replicas["pgbouncer"] == 2 and replicas["redis"] == 1
    for name in ("prometheus", "alertmanager", "grafana", "postgres-exporter-1", "postgres-exporter-2", "postgres-exporter-3", "redis-exporter", "backup"):
        assert replicas[name] == 1, name
    for name in ("node-exporter", "cadvisor"):
        assert services[name].inputs["mode"] == {"global": True}, name


def test_members_are_pinned_by_the_seeds_labels(graph: PlanGraph) -> None:
    services = _services(graph)
    for index in (1, 2, 3):
        assert services[f"etcd-{index}"].inputs["taskSpec"]["placement"]["constraints"] == [f"node.labels.postgres.etcd == etcd-{index}"]
        assert services[f"patroni-{index}"].inputs["taskSpec"]["placement"]["constraints"] == [f"node.labels.postgres.patroni-id == {index}"]
    assert services["redis"].inputs["taskSpec"]["placement"]["constraints"] == ["node.labels.redis.role == master"]
    for name in ("haproxy", "pgbouncer"):
        assert services[name].inputs["taskSpec"]["placement"]["maxReplicas"] == 1, "two replicas never share a node"


def test_each_service_joins_only_the_overlay_networks_its_tier_allows(graph: PlanGraph) -> None:
    """The overlay half of the firewall matrix: who shares a network with whom."""
    names = _network_names(graph)
    joined = {
        name: {names[n["id"]] for n in s.inputs["taskSpec"]["networksAdvanceds"]} for name, s in _services(graph).items()
    }
    assert all(joined[f"etcd-{i}"] == {"coordinator-net", "monitoring-net"} for i in (1, 2, 3))
    assert all(joined[f"patroni-{i}"] == {"coordinator-net", "data-net", "monitoring-net"} for i in (1, 2, 3))
    members_of = {t.network_name: {n for n, nets in joined.items() if t.network_name in nets} for t in TIERS}
    assert members_of["coordinator-net"] == {"etcd-1", "etcd-2", "etcd-3", "patroni-1", "patroni-2", "patroni-3"}, "design §2.2: etcd and Patroni only"
    assert members_of["app-net"] == {"haproxy", "pgbouncer", "redis", "redis-exporter"}
    assert not members_of["data-net"] & {"prometheus", "grafana", "alertmanager", "etcd-1", "node-exporter", "cadvisor"}
    assert members_of["monitoring-net"] >= {"prometheus", "alertmanager", "grafana", "node-exporter", "cadvisor", "postgres-exporter-1"}
    assert not members_of["monitoring-net"] & {"pgbouncer", "redis", "backup"}


def test_updates_roll_one_task_at_a_time_and_roll_back_on_failure(graph: PlanGraph) -> None:
    services = _services(graph)
    for name, service in services.items():
        update = service.inputs["updateConfig"]
        assert update["parallelism"] == 1 and update["failureAction"] == "rollback", name
        assert update["delay"].endswith("s") and int(update["delay"][:-1]) >= 10, name
    assert services["patroni-1"].inputs["updateConfig"]["delay"] == "60s"
    dependencies = {s["urn"]: s["newState"]["dependencies"] for s in graph.plan["steps"]}
    for first, then in (("patroni-1", "patroni-2"), ("patroni-2", "patroni-3"), ("etcd-1", "etcd-2"), ("etcd-2", "etcd-3")):
        assert services[first].urn in dependencies[services[then].urn], f"{then} is updated only after {first}"


def test_resources_are_limited_and_reserved_from_the_machine_sizes(graph: PlanGraph, settings: Settings) -> None:
    from dpc.catalog import machine_type  # noqa: PLC0415

    worker = machine_type(settings.cloud, settings.nodes.workers.machine_type)
    patroni = _services(graph)["patroni-1"].inputs["taskSpec"]["resources"]
    assert patroni["limits"]["memoryBytes"] <= worker.memory_gib * 2**30
    assert patroni["reservation"]["memoryBytes"] >= worker.memory_gib * 2**30 // 2
    assert patroni["limits"]["nanoCpus"] == worker.vcpus * 10**9
    for name, service in _services(graph).items():
        resources = service.inputs["taskSpec"]["resources"]
        assert resources["limits"]["memoryBytes"] >= resources["reservation"]["memoryBytes"] > 0, name


def test_secrets_reach_services_only_as_files_and_never_in_plain_text(graph: PlanGraph) -> None:
    secret_like = re.compile(r"(?i)(password|passwd|secret|token|key)")
    for name, service in _services(graph).items():
        container = service.inputs["taskSpec"]["containerSpec"]
        for variable, value in container.get("env", {}).items():
            assert not secret_like.search(variable) or variable.endswith("_FILE"), (name, variable)
            assert not value.startswith("-----BEGIN"), (name, variable)
        for secret in container.get("secrets", []):
            assert secret["fileName"].startswith(("/run/secrets/", "/etc/pgbackrest/conf.d/")), (name, secret["fileName"])
    secrets = graph.of_type(SECRET)
    assert len(secrets) >= len(PASSWORD_SECRETS) + 10
    for secret in secrets:
        assert secret.inputs["data"] == "[secret]", secret.name
    values = [
        generated_password(p.name, p.inputs["length"]) for p in graph.of_type("random:index/randomPassword:RandomPassword")
    ]
    text = json.dumps(graph.plan)
    assert "PRIVATE KEY" not in text
    assert not [value for value in values if value in text], "a generated password in plain text in the plan"
    for config in graph.of_type(CONFIG):
        content = base64.b64decode(config.inputs["data"]).decode()
        assert "PRIVATE KEY" not in content, config.name
        assert not [value for value in values if value in content], config.name


def test_every_file_a_service_mounts_exists_with_its_owner(graph: PlanGraph, settings: Settings) -> None:
    layout = derive(settings).layout
    specs = {s.name: s for s in database_services(derive(settings))}
    configs = plain_configs(settings, layout, None)
    secrets = set(secret_files(layout)) | set(PASSWORD_SECRETS) | {"backup_encryption_key", "tls_ca_cert"}
    secrets |= {name for r in certificate_requests(layout) for name in (r.cert_secret, r.key_secret)}
    for name, service in _services(graph).items():
        container = service.inputs["taskSpec"]["containerSpec"]
        mounted = [*container.get("secrets", []), *container.get("configs", [])]
        assert len(mounted) == len(specs[name].files), name
        assert all(m["fileUid"] == str(specs[name].uid) for m in mounted), name
        for file in specs[name].files:
            assert file.source in configs or file.source in secrets, (name, file.source)


def test_images_are_pinned_and_the_projects_own_are_built_and_pushed(graph: PlanGraph) -> None:
    for name, service in _services(graph).items():
        image = service.inputs["taskSpec"]["containerSpec"]["image"]
        assert not image.endswith(":latest") and (":" in image.rsplit("/", 1)[-1] or "@sha256:" in image), (name, image)
    built = graph.of_type("docker:index/image:Image")
    assert {b.inputs["build"]["context"] for b in built} == set(BUILT_IMAGES.values())
    for image in built:
        assert image.inputs["registry"]["password"] == "[secret]"
        assert image.inputs["imageName"].split(":")[-1] and ".dkr.ecr." in image.inputs["imageName"]
    repositories = graph.of_type("aws:ecr/repository:Repository")
    assert len(repositories) == len(BUILT_IMAGES)
    for repository in repositories:
        assert repository.inputs["imageTagMutability"] == "IMMUTABLE"
        assert repository.inputs["encryptionConfigurations"][0]["encryptionType"] == "KMS"


def test_certificates_are_signed_by_the_stacks_ca_for_every_member(graph: PlanGraph, settings: Settings) -> None:
    requests = certificate_requests(derive(settings).layout)
    csrs = {c.inputs["subject"]["commonName"]: c.inputs for c in graph.of_type("tls:index/certRequest:CertRequest")}
    assert len(csrs) == len({r.common_name for r in requests})
    for request in requests:
        assert set(request.dns_names) <= set(csrs[request.common_name].get("dnsNames", [])), request.name
    (ca,) = graph.of_type("tls:index/selfSignedCert:SelfSignedCert")
    assert ca.inputs["isCaCertificate"] is True
    for cert in graph.of_type("tls:index/locallySignedCert:LocallySignedCert"):
        assert cert.inputs["caPrivateKeyPem"] == "[secret]"
        assert cert.inputs["validityPeriodHours"] <= 365 * 24


def test_the_docker_provider_reaches_manager_1_through_the_bastion(graph: PlanGraph) -> None:
    (provider,) = graph.of_type("pulumi:providers:docker")
    assert re.fullmatch(r"ssh://admin@10\.\d+\.\d+\.\d+", provider.inputs["host"])
    assert any(o.startswith("ProxyCommand=ssh ") and " admin@" in o for o in json.loads(provider.inputs["sshOpts"]))
    for service in graph.of_type(SERVICE):
        assert service.provider.startswith(provider.urn)


def test_generated_secrets_are_protected_in_prod(graph: PlanGraph, settings: Settings) -> None:
    passwords = graph.of_type("random:index/randomPassword:RandomPassword")
    assert len(passwords) == len(PASSWORD_SECRETS) + 2, "every password, the backup passphrase and the key naming the secrets"
    assert all(p.protect is settings.is_prod for p in passwords)


@pytest.mark.parametrize("stack", ["local"])
def test_the_local_stack_deploys_the_same_services_to_the_local_engine(graph: PlanGraph) -> None:
    assert not [r for r in graph.resources if r.type.startswith("aws:")]
    (provider,) = graph.of_type("pulumi:providers:docker")
    assert provider.inputs["host"] == "unix:///var/run/docker.sock"
    prod = PlanGraph(plan_of("prod"))
    assert set(_services(graph)) == set(_services(prod))
    for name, service in _services(graph).items():
        assert not service.inputs["taskSpec"]["placement"].get("constraints"), name
        mounts = service.inputs["taskSpec"]["containerSpec"].get("mounts", [])
        assert all(m["source"].startswith(("/proc", "/sys", "/var/run", "/var/lib/docker")) or m["source"] == "/" for m in mounts if m["type"] == "bind"), name
    for image in graph.of_type("docker:index/image:Image"):
        assert image.inputs["skipPush"] is True


def test_service_users_match_the_images() -> None:
    dockerfile = (Path(__file__).resolve().parents[2] / "images/services/Dockerfile").read_text()
    for user, uid in (("postgres", Uid.POSTGRES), ("etcd", Uid.ETCD), ("haproxy", Uid.HAPROXY), ("redis", Uid.REDIS), ("prometheus", Uid.PROMETHEUS)):
        assert f"--uid {uid} --gid {user} " in dockerfile, user


def test_each_image_tag_is_a_digest_of_its_own_build_context(tmp_path: Path) -> None:
    from providers.common.database import PROJECT_ROOT, image_tags  # noqa: PLC0415

    for context in BUILT_IMAGES.values():
        shutil.copytree(PROJECT_ROOT / context, tmp_path / context)
    assert image_tags(tmp_path) == image_tags(PROJECT_ROOT) == image_tags(PROJECT_ROOT)
    dockerfile = tmp_path / BUILT_IMAGES["postgres"] / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\n")
    changed, unchanged = image_tags(tmp_path), image_tags(PROJECT_ROOT)
    assert changed["postgres"] != unchanged["postgres"], "a change to a build context gives a new tag, which rolls its services"
    assert changed["services"] == unchanged["services"], "and leaves the other image's services alone"


def test_pythons_caches_in_a_build_context_change_no_tag(tmp_path: Path) -> None:
    """Importing an image's modules (the tests do: the backup agent, the health check) leaves
    `__pycache__` beside them: not the image's source, so no new tag and no rolled services.
    """
    from providers.common.database import PROJECT_ROOT, image_tags  # noqa: PLC0415

    for context in BUILT_IMAGES.values():
        shutil.copytree(PROJECT_ROOT / context, tmp_path / context, ignore=shutil.ignore_patterns("__pycache__"))
    before = image_tags(tmp_path)
    cache = tmp_path / BUILT_IMAGES["postgres"] / "__pycache__"
    cache.mkdir()
    (cache / "backup_agent.cpython-311.pyc").write_bytes(b"compiled")
    (tmp_path / BUILT_IMAGES["postgres"] / "stray.pyc").write_bytes(b"compiled")
    assert image_tags(tmp_path) == before
    (tmp_path / BUILT_IMAGES["postgres"] / "new_module.py").write_text("")
    assert image_tags(tmp_path)["postgres"] != before["postgres"], "a source file still re-tags the image"


def test_the_local_stack_needs_no_cloud_settings() -> None:
    local = settings_from_stack_file(Path(__file__).resolve().parents[2] / "Pulumi.local.yaml")
    assert (local.cloud, local.environment) == ("local", "dev")
    assert (local.nodes.managers.count, local.nodes.workers.count, local.nodes.app.count) == (3, 3, 2)
    assert len(database_services(derive(local), "single-node")) == len(database_services(derive(local)))


def test_pgbouncer_raises_its_descriptor_limit_to_what_its_clients_need(graph: PlanGraph, settings: Settings) -> None:
    from dpc.render.pgbouncer import open_files_needed  # noqa: PLC0415

    layout = derive(settings).layout
    command = _services(graph)["pgbouncer"].inputs["taskSpec"]["containerSpec"]["args"]
    assert command[:2] == ["sh", "-c"] and command[2].startswith(f"ulimit -n {open_files_needed(layout)} && exec pgbouncer ")
    assert open_files_needed(layout) > layout.pgbouncer_max_client_connections


def test_stack_outputs_keep_the_passwords_secret(graph: PlanGraph) -> None:
    (stack,) = [s["newState"] for s in graph.plan["steps"] if s["newState"]["type"] == "pulumi:pulumi:Stack"]
    outputs = stack["outputs"]
    for name in ("superuserPassword", "appUserPassword", "grafanaAdminPassword"):
        assert outputs[name] == "[secret]", name
    assert outputs["caCertificate"].startswith("-----BEGIN CERTIFICATE-----"), "the CA certificate is public, for clients to verify with"


def test_the_backup_repository_is_a_volume_on_the_node_the_agent_runs_on(graph: PlanGraph, settings: Settings) -> None:
    agent_node = "backup-1" if settings.nodes.backup.count else "manager-1"
    backups = [v.name for v in graph.of_type("aws:ebs/volume:Volume") if v.name.endswith("-backups")]
    assert len(backups) == 1 and backups[0].endswith(f"-{agent_node}-backups")
    constraints = _services(graph)["backup"].inputs["taskSpec"]["placement"]["constraints"]
    expected = "node.labels.postgres.backup == true" if settings.nodes.backup.count else "node.labels.postgres.etcd == etcd-1"
    assert constraints == [expected]
    mounts = _services(graph)["backup"].inputs["taskSpec"]["containerSpec"]["mounts"]
    assert {"type": "bind", "source": "/mnt/postgres-cluster/backups", "target": "/mnt/postgres-cluster/backups", "readOnly": False} in mounts


def test_start_first_updates_always_have_a_free_node_to_start_on(graph: PlanGraph, settings: Settings) -> None:
    """A service at most once per node that starts its new task before stopping the old one needs a
    node without a task of it; otherwise the new task stays pending and the update never ends."""
    from dpc.model import Role, node_group  # noqa: PLC0415

    for name, service in _services(graph).items():
        inputs = service.inputs
        if inputs["updateConfig"]["order"] == "start-first" and inputs["taskSpec"]["placement"].get("maxReplicas") == 1:
            nodes = node_group(settings, Role(inputs["labels"][0]["value"])).count
            assert nodes > inputs["mode"]["replicated"]["replicas"], name


def test_replicated_services_make_pulumi_wait_until_they_converge(graph: PlanGraph) -> None:
    """So that `patroni-2` is updated only once `patroni-1` runs its new spec."""
    for name, service in _services(graph).items():
        if "replicated" in service.inputs["mode"]:
            assert service.inputs["convergeConfig"]["timeout"], name


@pytest.mark.parametrize("stack", ["local"])
def test_on_one_engine_services_reserve_nothing_but_keep_their_limits(graph: PlanGraph) -> None:
    for name, service in _services(graph).items():
        resources = service.inputs["taskSpec"]["resources"]
        assert resources["reservation"] == {"memoryBytes": 0, "nanoCpus": 0}, name
        assert resources["limits"]["memoryBytes"] > 0, name


def test_secret_names_do_not_reveal_a_digest_of_the_secret(graph: PlanGraph) -> None:
    """A secret's name changes with its content, but through a keyed digest: a plain digest of a
    password in `docker secret ls` or the plan would let anyone check a guess of it."""
    import hashlib  # noqa: PLC0415

    passwords = {p.name: generated_password(p.name, p.inputs["length"]) for p in graph.of_type("random:index/randomPassword:RandomPassword")}
    names = [s.inputs["name"] for s in graph.of_type(SECRET)]
    for value in passwords.values():
        assert not [n for n in names if n.endswith(hashlib.sha256(value.encode()).hexdigest()[:12])]
    assert len(set(names)) == len(names) and all(re.fullmatch(r".+-[0-9a-f]{12}", n) for n in names)


def test_each_service_spec_joins_only_networks_whose_members_include_its_kind(settings: Settings) -> None:
    """The program's side of the invariant the policy pack's `services-only-on-their-overlay-networks`
    checks on the plan: `TierSpec.members` says who may join each network, and says it exactly, so
    that a kind listed but no longer joining is taken out rather than left open."""
    from dpc.tiers import service_kind  # noqa: PLC0415

    members = {spec.tier: set(spec.members) for spec in TIERS}
    joined = {(service_kind(s.name), tier) for s in database_services(derive(settings)) for tier in s.networks}
    assert {(kind, tier) for kind, tier in joined if kind not in members[tier]} == set()
    assert joined == {(kind, tier) for tier, kinds in members.items() for kind in kinds}


def test_deployed_services_resolve_by_virtual_address_and_publish_through_the_ingress(graph: PlanGraph) -> None:
    """The deployed default (dpc/swarm_spec.py EndpointMode): the cloud's load balancer targets every
    node, so a published port must answer on every node, which only the ingress routing mesh does."""
    for name, service in _services(graph).items():
        endpoint = service.inputs["endpointSpec"]
        assert endpoint["mode"] == "vip", name
        assert all(p["publishMode"] == "ingress" and p["protocol"] == "tcp" for p in endpoint.get("ports", [])), name
