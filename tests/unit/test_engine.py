"""The local Swarm's pure parts (engine/): what it deploys, from the same data as the program."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from dpc.cluster import CA_SECRET
from dpc.config import settings_from_stack_file
from dpc.services import Image, database_services
from dpc.settings import Settings
from dpc.swarm_spec import swarm_service
from dpc.tiers import TIERS
from dpc.topology import derive
from engine.deploy import covers, stack_objects
from engine.lab import host_directories
from engine.secrets import generated_passwords, secret_contents

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return settings_from_stack_file(PROJECT_ROOT / "Pulumi.local.yaml")


def test_the_engine_leaves_out_empty_values_and_adds_defaults_and_still_covers_the_spec() -> None:
    sent = {"Name": "x", "Env": [], "Mounts": [{"Source": "a", "ReadOnly": False}], "Labels": {}, "Args": ["--flag"]}
    returned = {"Name": "x", "Mounts": [{"Source": "a"}], "Args": ["--flag"], "Isolation": "default"}
    assert covers(returned, sent)
    assert not covers(returned | {"Args": ["--other"]}, sent)
    assert not covers({"Name": "x", "Mounts": [{"Source": "a"}]}, sent), "a sent value the engine lacks is a difference"
    assert not covers(returned | {"Mounts": [{"Source": "a", "ReadOnly": True}]}, sent)
    assert not covers(returned | {"Mounts": []}, sent)


def test_the_local_swarm_places_services_as_the_clouds_do_and_leaves_out_only_missing_images(settings: Settings) -> None:
    objects = stack_objects(settings, encrypted_overlays=True, endpoint_mode="dnsrr", missing_images={Image.GRAFANA: "cannot pull"})
    assert set(objects.left_out) == {"grafana"}
    assert "cannot pull" in objects.left_out["grafana"]
    patroni = next(s for s in objects.services if s.name == "patroni-2")
    assert patroni.constraints == ("node.labels.postgres.patroni-id == 2",)
    assert all(p.publish_mode == "host" for s in objects.services for p in s.ports), "no IPVS: ports are published where the tasks run"
    expected = [swarm_service(s, objects.configs, "dnsrr").name for s in database_services(derive(settings), "cluster")]
    assert [s.name for s in objects.services] == [name for name in expected if name != "grafana"]


def test_overlays_are_unencrypted_only_when_the_kernel_cannot(settings: Settings) -> None:
    encrypted = stack_objects(settings, encrypted_overlays=True, endpoint_mode="dnsrr", missing_images={})
    plain = stack_objects(settings, encrypted_overlays=False, endpoint_mode="dnsrr", missing_images={})
    assert {n.name for n in encrypted.networks if ("encrypted", "") in n.options} == {t.network_name for t in TIERS if t.encrypted}
    assert not [n for n in plain.networks if n.options]


def test_each_node_gets_the_volume_mount_points_the_cloud_gives_it(settings: Settings) -> None:
    directories = host_directories(settings)
    assert {node: sorted(d.path for d in dirs) for node, dirs in directories.items()} == {
        "worker-1": ["/mnt/postgres-cluster/patroni-1", "/mnt/postgres-cluster/patroni-1-wal"],
        "worker-2": ["/mnt/postgres-cluster/patroni-2", "/mnt/postgres-cluster/patroni-2-wal"],
        "worker-3": ["/mnt/postgres-cluster/patroni-3", "/mnt/postgres-cluster/patroni-3-wal"],
        "manager-1": ["/mnt/postgres-cluster/backups"],
    }
    assert {d.owner for dirs in directories.values() for d in dirs} == {999}


def test_every_secret_a_service_mounts_is_generated(settings: Settings) -> None:
    objects = stack_objects(settings, encrypted_overlays=False, endpoint_mode="dnsrr", missing_images={})
    values = secret_contents(objects.layout, "test CA", datetime.timedelta(days=1))
    mounted = {f.name for s in objects.services for f in s.secrets}
    assert mounted <= set(values), f"not generated: {sorted(mounted - set(values))}"
    assert values[CA_SECRET].startswith("-----BEGIN CERTIFICATE-----")


def test_generated_passwords_are_fresh_letters_and_digits_of_the_programs_lengths() -> None:
    first, second = generated_passwords(), generated_passwords()
    assert first.keys() == second.keys()
    assert all(first[name] != second[name] and first[name].isalnum() for name in first)
    assert {len(v) for v in first.values()} == {32, 64}
