"""pgBackRest's rendered configuration as data: the seed's retention mapped onto pgBackRest's, the
TLS wiring between the repository host and the database hosts, and the secrets kept to their
fragments (Azure's offsite key to the backup agent's own, a Docker secret no database host mounts)."""

from __future__ import annotations

import base64
import configparser
from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker as docker
import pytest

from dpc.cluster import BACKUP_ENCRYPTION_SECRET, Port, certificate_requests
from dpc.config import settings_from_stack_file
from dpc.render.backup import (
    PGBACKREST_INCLUDE_DIR,
    AzureRepository,
    GcsRepository,
    OffsiteRepository,
    S3Repository,
    local_full_retention_days,
    offsite_full_retention_days,
    render_pgbackrest_database_host,
    render_pgbackrest_offsite_secrets,
    render_pgbackrest_repository,
    render_pgbackrest_secrets,
)
from dpc.services import PGBACKREST_OFFSITE_SECRETS
from dpc.topology import derive
from providers.common.database import deploy_database
from review.plan import plan_program, stack_config
from tests.golden_files import assert_matches_golden, assert_no_stale_golden_files

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GCS_GOLDEN_DIR = PROJECT_ROOT / "tests" / "golden" / "backup-gcs"
AZURE_GOLDEN_DIR = PROJECT_ROOT / "tests" / "golden" / "backup-azure"
SETTINGS = settings_from_stack_file(PROJECT_ROOT / "Pulumi.prod.yaml")
LAYOUT = derive(SETTINGS).layout
OFFSITE = S3Repository(bucket="example-bucket", region="eu-west-1")
FAKE = "fake-passphrase"


def parsed(text: str) -> configparser.ConfigParser:
    """pgBackRest's INI, with repeated keys (list options) joined."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    return parser


def test_retention_covers_every_tier_of_the_seed() -> None:
    backup = SETTINGS.backup
    assert (backup.wal_retention_days, backup.daily_retention_days, backup.weekly_retention_weeks, backup.monthly_retention_months) == (30, 7, 4, 12)
    assert local_full_retention_days(backup) == 30
    assert offsite_full_retention_days(backup) == backup.offsite_expire_after_days == 2555, "design §4.4: 7 years offsite"
    longer_weeks = backup.model_copy(update={"weekly_retention_weeks": 6})
    assert local_full_retention_days(longer_weeks) == 42


def test_repository_host_config() -> None:
    conf = parsed(render_pgbackrest_repository(LAYOUT, SETTINGS.backup, OFFSITE))["global"]
    assert conf["repo1-path"] == LAYOUT.paths.backup_repository
    assert conf["repo1-retention-full-type"] == "time" and conf["repo1-retention-full"] == "30"
    assert conf["repo1-retention-diff"] == "7"
    assert conf["repo1-cipher-type"] == conf["repo2-cipher-type"] == "aes-256-cbc"
    assert (conf["compress-type"], conf["compress-level"]) == ("zst", "3")
    assert (conf["repo2-type"], conf["repo2-s3-bucket"], conf["repo2-s3-region"]) == ("s3", "example-bucket", "eu-west-1")
    assert conf["repo2-s3-endpoint"] == "s3.eu-west-1.amazonaws.com"
    assert conf["repo2-s3-key-type"] == "auto"
    assert (conf["repo2-retention-full-type"], conf["repo2-retention-full"]) == ("time", "2555")
    assert (conf["repo2-retention-archive-type"], conf["repo2-retention-archive"]) == ("full", "1"), "WAL only as the offsite fulls need it"
    assert "repo1-retention-archive" not in conf, "repo1 keeps point-in-time recovery over its whole retention"
    assert conf["repo2-bundle"] == "y" and "repo1-bundle" not in conf, "the bucket gets few, large objects"
    assert (conf["backup-standby"], conf["start-fast"]) == ("y", "y")
    assert "cipher-pass" not in render_pgbackrest_repository(LAYOUT, SETTINGS.backup, OFFSITE)


def test_repository_host_reaches_every_member_over_tls_with_the_backup_certificate() -> None:
    text = render_pgbackrest_repository(LAYOUT, SETTINGS.backup, None)
    stanza = parsed(text)["main"]
    for index, member in enumerate(LAYOUT.patroni, start=1):
        assert stanza[f"pg{index}-host"] == member.host
        assert stanza[f"pg{index}-host-type"] == "tls"
        assert stanza[f"pg{index}-host-port"] == str(Port.PGBACKREST)
        assert stanza[f"pg{index}-host-cert-file"].endswith("/backup_tls_cert")
    assert [line for line in text.splitlines() if line.startswith("tls-server-auth=")] == [f"tls-server-auth={m.name}=main" for m in LAYOUT.patroni]
    assert "repo2" not in text


def test_database_host_trusts_only_the_backup_certificate_and_mirrors_the_repositories() -> None:
    member = LAYOUT.patroni[1]
    conf = parsed(render_pgbackrest_database_host(LAYOUT, member, offsite=True))["global"]
    backup_cn = next(r.common_name for r in certificate_requests(LAYOUT) if r.name == LAYOUT.backup.name)
    assert conf["tls-server-auth"] == f"{backup_cn}=main"
    assert conf["tls-server-cert-file"].endswith(f"/{member.name}_tls_cert")
    for index in (1, 2):
        assert conf[f"repo{index}-host"] == LAYOUT.backup.host
        assert conf[f"repo{index}-host-type"] == "tls"
        assert conf[f"repo{index}-cipher-type"] == "aes-256-cbc"
    assert conf["repo1-path"] == LAYOUT.paths.backup_repository
    assert conf["archive-async"] == "y"
    assert "repo2-host" not in render_pgbackrest_database_host(LAYOUT, member, offsite=False)


def test_the_archive_queue_is_capped_by_the_wal_volumes_budget_on_the_database_hosts_alone() -> None:
    """Design §5.3: an unreachable repository drops WAL (pgBackRest's warning) past the cap instead
    of filling the WAL volume; the repository host archives nothing."""
    for member in LAYOUT.patroni:
        conf = parsed(render_pgbackrest_database_host(LAYOUT, member, offsite=True))["global"]
        assert conf["archive-push-queue-max"] == f"{LAYOUT.wal.archive_queue_mb}MiB" == "177408MiB"
    assert "archive-push-queue-max" not in render_pgbackrest_repository(LAYOUT, SETTINGS.backup, OFFSITE)


def test_secrets_fragment_holds_the_passphrase_and_nothing_else() -> None:
    conf = parsed(render_pgbackrest_secrets({BACKUP_ENCRYPTION_SECRET: FAKE}))["global"]
    assert dict(conf) == {"repo1-cipher-pass": FAKE, "repo2-cipher-pass": FAKE}


@pytest.mark.parametrize("passphrase", ["", "two\nlines"])
def test_a_passphrase_that_would_break_the_file_is_refused(passphrase: str) -> None:
    with pytest.raises(ValueError, match=BACKUP_ENCRYPTION_SECRET):
        render_pgbackrest_secrets({BACKUP_ENCRYPTION_SECRET: passphrase})


def test_offsite_endpoint_and_prefix() -> None:
    assert S3Repository("b", "us-east-1", endpoint="minio.example:9000").s3_endpoint == "minio.example:9000"
    with pytest.raises(ValueError, match="must start with '/'"):
        S3Repository("b", "us-east-1", key_prefix="pgbackrest")


def test_rendering_is_deterministic() -> None:
    assert render_pgbackrest_repository(LAYOUT, SETTINGS.backup, OFFSITE) == render_pgbackrest_repository(LAYOUT, SETTINGS.backup, OFFSITE)


GCS_OFFSITE = GcsRepository(bucket="example-gcs-bucket")


def test_repository_host_config_with_a_gcs_offsite_repository() -> None:
    """The bucket reached with the instance's service account (no key file), Google's endpoint by
    default; everything that is not the object store's (cipher, bundling, retention) as for S3."""
    text = render_pgbackrest_repository(LAYOUT, SETTINGS.backup, GCS_OFFSITE)
    conf = parsed(text)["global"]
    assert (conf["repo2-type"], conf["repo2-gcs-bucket"], conf["repo2-gcs-key-type"]) == ("gcs", "example-gcs-bucket", "auto")
    assert conf["repo2-path"] == "/pgbackrest"
    assert "repo2-gcs-endpoint" not in conf and "repo2-gcs-key" not in conf and "s3" not in text
    s3 = parsed(render_pgbackrest_repository(LAYOUT, SETTINGS.backup, OFFSITE))["global"]
    assert {k: v for k, v in conf.items() if "-gcs-" not in k and k != "repo2-type"} == {k: v for k, v in s3.items() if "-s3-" not in k and k != "repo2-type"}


def test_gcs_endpoint_and_prefix() -> None:
    assert GcsRepository("b", endpoint="127.0.0.1:4443").options(2)["repo2-gcs-endpoint"] == "127.0.0.1:4443"
    with pytest.raises(ValueError, match="must start with '/'"):
        GcsRepository("b", key_prefix="pgbackrest")


def test_gcs_repository_matches_its_golden_file() -> None:
    """The repository host's file with a GCS repo2, byte for byte (tests/golden/backup-gcs/)."""
    assert_no_stale_golden_files(GCS_GOLDEN_DIR, {"repository.conf"})
    assert_matches_golden(GCS_GOLDEN_DIR / "repository.conf", render_pgbackrest_repository(LAYOUT, SETTINGS.backup, GCS_OFFSITE), "repository.conf (GCS)")


AZURE_OFFSITE = AzureRepository.from_bucket_name("dpcprodbackups/pgbackrest")
AZURE_KEY = base64.b64encode(b"an Azure storage account key, 64 bytes long as Azure's are.......").decode()


def test_repository_host_config_with_an_azure_offsite_repository_holds_no_key() -> None:
    """The account and container from the storage builder's `<account>/<container>`, shared key
    auth, Azure's endpoint by default; the key itself nowhere in pgbackrest.conf (a Docker config);
    everything that is not the object store's (cipher, bundling, retention) as for S3."""
    text = render_pgbackrest_repository(LAYOUT, SETTINGS.backup, AZURE_OFFSITE)
    conf = parsed(text)["global"]
    assert (conf["repo2-type"], conf["repo2-azure-account"], conf["repo2-azure-container"]) == ("azure", "dpcprodbackups", "pgbackrest")
    assert (conf["repo2-azure-key-type"], conf["repo2-path"]) == ("shared", "/pgbackrest")
    assert not {"repo2-azure-key", "repo2-azure-endpoint", "repo2-storage-port", "repo2-azure-uri-style"} & set(conf)
    assert AZURE_KEY not in text and "s3" not in text
    s3 = parsed(render_pgbackrest_repository(LAYOUT, SETTINGS.backup, OFFSITE))["global"]
    assert {k: v for k, v in conf.items() if "-azure-" not in k and k != "repo2-type"} == {k: v for k, v in s3.items() if "-s3-" not in k and k != "repo2-type"}


def test_the_azure_key_is_in_the_offsite_fragment_alone() -> None:
    assert dict(parsed(render_pgbackrest_offsite_secrets(AZURE_OFFSITE, AZURE_KEY))["global"]) == {"repo2-azure-key": AZURE_KEY}
    assert AZURE_KEY not in render_pgbackrest_secrets({BACKUP_ENCRYPTION_SECRET: FAKE}), "the fragment every database host mounts"


@pytest.mark.parametrize("offsite", [OFFSITE, GCS_OFFSITE])
def test_a_store_reached_with_the_machines_identity_takes_no_key(offsite: OffsiteRepository) -> None:
    with pytest.raises(ValueError, match="takes no key"):
        render_pgbackrest_offsite_secrets(offsite, AZURE_KEY)


@pytest.mark.parametrize("key", ["", "two\nlines"])
def test_a_key_that_would_break_the_fragment_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="one non-empty line"):
        render_pgbackrest_offsite_secrets(AZURE_OFFSITE, key)


def test_azure_emulator_options_and_names() -> None:
    emulated = AzureRepository("devaccount", "backups", endpoint="localhost", port=10000, uri_style="path").options(2)
    assert (emulated["repo2-azure-endpoint"], emulated["repo2-storage-port"], emulated["repo2-azure-uri-style"]) == ("localhost", "10000", "path")
    with pytest.raises(ValueError, match="must start with '/'"):
        AzureRepository("devaccount", "backups", key_prefix="pgbackrest")


@pytest.mark.parametrize(
    ("bucket_name", "words"),
    [
        ("dpcprodbackups", "<account>/<container>"),
        ("DpcProd/pgbackrest", "storage account name"),
        ("ab/pgbackrest", "storage account name"),
        ("dpcprodbackups/pg--backrest", "blob container name"),
        ("dpcprodbackups/pgbackrest/more", "blob container name"),
        ("dpcprodbackups/-pgbackrest", "blob container name"),
    ],
)
def test_a_name_azure_would_refuse_is_refused(bucket_name: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        AzureRepository.from_bucket_name(bucket_name)


def test_azure_repository_matches_its_golden_files() -> None:
    """The repository host's file with an Azure repo2 and the key's fragment, byte for byte (tests/golden/backup-azure/)."""
    assert_no_stale_golden_files(AZURE_GOLDEN_DIR, {"repository.conf", "offsite.conf"})
    assert_matches_golden(AZURE_GOLDEN_DIR / "repository.conf", render_pgbackrest_repository(LAYOUT, SETTINGS.backup, AZURE_OFFSITE), "repository.conf (Azure)")
    assert_matches_golden(AZURE_GOLDEN_DIR / "offsite.conf", render_pgbackrest_offsite_secrets(AZURE_OFFSITE, "ZmFrZS1rZXk="), "offsite.conf (Azure)")


def _database_stack(credential: str | None) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The database stack of prod's topology under the plan's mocks, with an Azure repo2 and, when
    given, its key as the cloud hands it over; its plan and its revealed inputs."""
    config, secret_keys = stack_config("prod")

    def program() -> None:
        deploy_database(
            derive(SETTINGS),
            "prod",
            engine=docker.Provider("prod-docker", host="unix:///var/run/docker.sock"),
            registry=None,
            offsite=pulumi.Output.from_input(AZURE_OFFSITE),
            offsite_credential=None if credential is None else pulumi.Output.from_input(credential),
            placement="cluster",
        )

    return plan_program(program, "prod", config, secret_keys)


def _mounted(step: dict[str, Any]) -> dict[str, str]:
    """A service's Docker secrets by the file they are mounted at."""
    return {m["fileName"]: m["secretName"] for m in step["newState"]["inputs"]["taskSpec"]["containerSpec"].get("secrets", [])}


def test_the_key_travels_as_the_backup_agents_secret_alone() -> None:
    """The key handed over in the clear still reaches the engine only as a secret: one Docker
    secret, the offsite fragment, which the backup agent mounts and no other service does; no
    Docker config, service or other secret carries it."""
    plan, revealed = _database_stack(AZURE_KEY)
    steps = plan["steps"]
    fragment_name = f"secret-{PGBACKREST_OFFSITE_SECRETS.replace('_', '-')}"
    (secret,) = [s for s in steps if s["newState"]["type"] == "docker:index/secret:Secret" and s["urn"].endswith(fragment_name)]
    assert secret["newState"]["inputs"]["data"] == "[secret]"
    assert base64.b64decode(revealed[secret["urn"]]["data"]).decode() == render_pgbackrest_offsite_secrets(AZURE_OFFSITE, AZURE_KEY)
    offsite_file = f"{PGBACKREST_INCLUDE_DIR}/offsite.conf"
    services = {s["newState"]["inputs"]["name"]: s for s in steps if s["newState"]["type"] == "docker:index/service:Service"}
    assert [name for name, step in services.items() if offsite_file in _mounted(step)] == ["backup"]
    for urn, inputs in revealed.items():
        data = base64.b64decode(inputs["data"]).decode(errors="replace") if isinstance(inputs.get("data"), str) else ""
        assert urn == secret["urn"] or AZURE_KEY not in str(inputs) + data, f"the key in {urn}"


def test_without_a_key_no_fragment_and_no_mount() -> None:
    plan, _ = _database_stack(None)
    steps = plan["steps"]
    assert not [s for s in steps if PGBACKREST_OFFSITE_SECRETS.replace("_", "-") in s["urn"]]
    (backup,) = [s for s in steps if s["newState"]["type"] == "docker:index/service:Service" and s["newState"]["inputs"]["name"] == "backup"]
    assert f"{PGBACKREST_INCLUDE_DIR}/offsite.conf" not in _mounted(backup)
