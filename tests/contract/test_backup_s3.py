"""pgBackRest 2.45 and the offsite repository (repo2) on a local S3 API: the backup agent's rendered
IAM statements enforced, and the repository's objects in the bucket lifecycle's storage classes.

The S3 API is moto's server (`tests/contract/aws_emulator.py`) with its IAM enforcement on after
the set-up requests. pgBackRest's S3 driver speaks only TLS, and moto's own `--ssl` mode
(Werkzeug) closes every connection without a TLS close-notify, which pgBackRest (OpenSSL 3)
reports as an error after each request: so Debian's HAProxy, the one the cluster runs, terminates
TLS on loopback in front of moto with a certificate from a throwaway CA that pgBackRest verifies
(`repo2-storage-ca-file`; TLS verification stays on, as on AWS).

The set-up, with the emulator's root credentials: a KMS key; the bucket, versioned, with SSE-KMS
under that key by default (bucket key on), as providers/aws/storage.py makes it; an IAM user whose
only policy is exactly the statements the program renders for the backup agent
(`backup_writer_statements`, with the emulator's bucket and key ARNs), and an operator user that
moves objects between storage classes as the lifecycle would. A probe then checks that the
agent's credentials are really held to their policy before pgBackRest runs.

pgBackRest runs with the repository host's rendered pgbackrest.conf. What differs on this machine
is given in PGBACKREST_* variables, or on the command line where pgBackRest takes it only there:
the rendered file's and the secret fragment's paths; the S3 endpoint, port, path-style URIs and
the test CA (the rendered file names AWS's regional endpoint); shared keys instead of the
instance role (`repo2-s3-key-type=shared`: no instance metadata here); `--reset-pg1-host`, since
PostgreSQL runs beside it rather than behind a `pgbackrest server` (tests/contract/test_backup.py
proves that relay); `--no-backup-standby` with a single database. Every other option, the cipher,
the retention, the prefix, is the rendered one.

Where moto's IAM evaluation differs from AWS's, as far as established by reading moto 5.2.5:
- KMS: moto's S3 does not call KMS on the caller's behalf, so the `kms:Decrypt` and
  `kms:GenerateDataKey` statements (and their `kms:ViaService` and encryption-context
  conditions) are not exercised here; neither is the bucket's TLS-only policy.
- A multi-object delete (`POST ?delete`, which pgBackRest's `expire` uses to remove a backup's
  files) is authorized by moto as `s3:DeleteObject` on the bucket's ARN, by AWS as `s3:DeleteObject`
  on each key. The agent's policy is therefore given to moto with that same grant restated on the
  bucket's ARN (`as_moto_authorizes`): added for each `s3:DeleteObject` the program grants, none
  when it grants none. Past that check, moto deletes any key of the bucket, AWS only those the
  prefix grants.
- moto treats any condition it cannot evaluate as unmet (it denies); the rendered S3 statements
  carry none.
- moto answers a GET of a GLACIER or DEEP_ARCHIVE object that is not restored with
  `InvalidObjectState`, as AWS does, and reads GLACIER_IR objects at once, as AWS does; it does
  not run lifecycle rules, so the objects are moved between classes by copy (the operator).

Scenarios (each on its own emulator and PostgreSQL 15; 33 s and 16 s on this 2-core machine):
- the rendered policy: stanza-create, archive-push (PostgreSQL's archive_command), a full backup;
  every object moved to GLACIER_IR, the lifecycle's archive class; a second full backup, more WAL,
  `expire` of the first backup (which deletes its files and the WAL only it needed), archive-get
  and a restore from repo2 alone whose recovery fetches WAL from repo2: the rows come back. Then
  every object moved to GLACIER (Flexible Retrieval), the class the old lifecycle chose: a backup,
  an archive-get and a restore all fail with InvalidObjectState. (GLACIER_IR first: neither S3 nor
  moto copies an unrestored GLACIER object, so the order cannot be the other way round.)
- the policy before this change, without `s3:DeleteObject`: every backup to repo2 fails with
  AccessDenied, on the DELETE with which pgBackRest replaces the stanza's `latest` object.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from dpc.cluster import BACKUP_ENCRYPTION_SECRET, BACKUP_STANZA, CA_SECRET, CertificateRequest
from dpc.render.backup import (
    ARCHIVE_COMMAND,
    OFFSITE_KEY_PREFIX,
    RESTORE_COMMAND,
    OffsiteRepository,
    S3Repository,
    render_pgbackrest_repository,
    render_pgbackrest_secrets,
)
from engine.pki import issue
from providers.aws.settings import ARCHIVE_STORAGE_CLASS
from providers.aws.storage import backup_writer_statements
from tests.cluster.hosts import SMOKE_CERTIFICATE_VALIDITY
from tests.contract.aws_emulator import REGION, Emulator, aws_emulator
from tests.contract.test_backup import (
    FAKE_PASSPHRASE,
    POSTGRES_BIN,
    TIMEOUT,
    WAIT_SECONDS,
    BackupRig,
    free_port,
    layouts,
    owned_by_postgres,
    pgbackrest,
    postgres_running,
    prod_settings,
    run_as,
    sql,
    terminate,
    wait_for_port,
    wait_until,
    with_options,
)

pytestmark = pytest.mark.contract

BUCKET = "dpc-test-offsite-backups"
PREFIX = OFFSITE_KEY_PREFIX.strip("/")
SET_UP_REQUESTS = 10
"""The set-up's requests with the root credentials (`_set_up`), after which moto enforces IAM."""
DATABASE_COMMANDS = frozenset({"archive-get", "backup", "restore", "stanza-create"})
"""The commands that take the database's options (the rendered pg1-host among them)."""
OLD_POLICY_ACTIONS = frozenset({"s3:DeleteObject"})
"""What the backup agent's policy lacked before: without it pgBackRest's expire fails."""


@dataclass(frozen=True)
class OffsiteBucket:
    """The emulator's bucket and key, and the credentials of the backup agent and of the operator."""

    emulator: Emulator
    bucket_arn: str
    key_arn: str
    agent: dict[str, str]
    operator: dict[str, str]

    def s3(self, credentials: Mapping[str, str]) -> Any:
        """A boto3 S3 client with these credentials, straight to the emulator (plain HTTP)."""
        return boto3.client(
            "s3", endpoint_url=self.emulator.endpoint, region_name=REGION,
            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"], aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        )

    def object_keys(self) -> list[str]:
        """Every current object of the repository."""
        pages = self.s3(self.operator).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/")
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def move_all(self, storage_class: str) -> None:
        """Every object of the repository into `storage_class`, as a lifecycle transition would."""
        client = self.s3(self.operator)
        for key in self.object_keys():
            client.copy_object(Bucket=BUCKET, Key=key, CopySource={"Bucket": BUCKET, "Key": key}, StorageClass=storage_class, MetadataDirective="COPY")
            assert client.head_object(Bucket=BUCKET, Key=key).get("StorageClass", "STANDARD") == storage_class, key


def as_moto_authorizes(statements: Sequence[dict[str, object]], bucket_arn: str) -> list[dict[str, object]]:
    """The statements, plus each `s3:DeleteObject` grant restated on the bucket's ARN, where moto
    checks a multi-object delete (AWS checks each key; see the module docstring)."""
    restated: list[dict[str, object]] = [
        {"Effect": "Allow", "Action": ["s3:DeleteObject"], "Resource": bucket_arn}
        for statement in statements
        if "s3:DeleteObject" in statement["Action"] and str(statement["Resource"]).startswith(f"{bucket_arn}/")
    ]
    return [*statements, *restated]


def _user(iam: Any, name: str, statements: Sequence[dict[str, object]]) -> dict[str, str]:
    """An IAM user with one inline policy of these statements, and its access key (3 requests)."""
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def _set_up(emulator: Emulator, *, without: frozenset[str]) -> OffsiteBucket:
    """The bucket as the program makes it and the two users: exactly `SET_UP_REQUESTS` requests."""
    root = {"endpoint_url": emulator.endpoint, "region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    key_arn = boto3.client("kms", **root).create_key(Description="offsite backups")["KeyMetadata"]["Arn"]
    s3 = boto3.client("s3", **root)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}, "BucketKeyEnabled": True,
    }]})
    bucket_arn = f"arn:aws:s3:::{BUCKET}"
    rendered = backup_writer_statements(bucket_arn, key_arn)
    statements = [{**s, "Action": [a for a in s["Action"] if a not in without]} for s in rendered]
    iam = boto3.client("iam", **root)
    agent = _user(iam, "backup-agent", as_moto_authorizes([s for s in statements if s["Action"]], bucket_arn))
    operator = _user(iam, "operator", [{"Effect": "Allow", "Action": ["s3:*"], "Resource": [bucket_arn, f"{bucket_arn}/*"]}])
    offsite = OffsiteBucket(emulator, bucket_arn, key_arn, agent, operator)
    with pytest.raises(Exception, match="AccessDenied"):
        offsite.s3(agent).list_buckets()  # proves IAM is enforced before pgBackRest runs
    return offsite


def localhost_certificate(root: Path) -> tuple[Path, str, str]:
    """A throwaway CA's server certificate for `localhost` (and 127.0.0.1): the CA file, written
    under `root` for pgBackRest to verify, and the certificate and its key (PEM)."""
    request = CertificateRequest("s3", "localhost", ("localhost",), ("127.0.0.1",), "server")
    pem = issue((request,), "dpc test CA", SMOKE_CERTIFICATE_VALIDITY)
    directory = root / "tls"
    directory.mkdir()
    ca_file = directory / "ca.pem"
    ca_file.write_text(pem[CA_SECRET])
    ca_file.chmod(0o644)
    return ca_file, pem[request.cert_secret], pem[request.key_secret]


@contextlib.contextmanager
def tls_terminator(root: Path, backend: str, *, options: Sequence[str] = ()) -> Iterator[tuple[int, Path]]:
    """HAProxy on a free loopback port, TLS with a throwaway CA's certificate for `localhost`, in
    front of the emulator's plain HTTP; yields the port and the CA file for pgBackRest to verify.
    `options` are HAProxy `option` lines for the emulator's quirks."""
    ca_file, certificate, key = localhost_certificate(root)
    directory = ca_file.parent
    bundle = directory / "s3.pem"
    bundle.write_text(certificate + key)
    port = free_port()
    config = directory / "haproxy.cfg"
    config.write_text(
        "global\n  maxconn 100\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n"
        + "".join(f"  option {option}\n" for option in options)
        + f"frontend s3\n  bind 127.0.0.1:{port} ssl crt {bundle}\n  default_backend emulator\n"
        f"backend emulator\n  server moto {backend.removeprefix('http://')}\n"
    )
    proxy = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, proxy, time.monotonic() + WAIT_SECONDS)
        yield port, ca_file
    finally:
        terminate(proxy)


@dataclass(frozen=True)
class OffsiteRig:
    """PostgreSQL 15 archiving through the repository host's rendered config to repo1 and repo2
    (in S3 here, in Cloud Storage in tests/contract/test_backup_gcs.py)."""

    rig: BackupRig
    environment: dict[str, str]
    """The postgres user's environment: this machine's overrides of the rendered config."""

    def pgbackrest(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """pgbackrest as the postgres user with this machine's overrides, for the stanza; the
        commands that reach PostgreSQL reach it here, not through pg1-host."""
        local = ("--reset-pg1-host",) if DATABASE_COMMANDS & set(arguments) else ()
        return pgbackrest(*local, f"--stanza={BACKUP_STANZA}", *arguments, user="postgres", env=self.environment)

    def ok(self, *arguments: str) -> str:
        """pgbackrest that must succeed; its output."""
        result = self.pgbackrest(*arguments)
        assert result.returncode == 0, f"{arguments}: {result.stdout}{result.stderr}"
        return result.stdout + result.stderr

    def sql(self, query: str, port: int = 5432) -> str:
        return sql(self.rig, port, query)

    def offsite_info(self) -> dict[str, Any]:
        (stanza,) = json.loads(self.ok("--repo=2", "--output=json", "info"))
        return stanza

    def switch_and_archive(self) -> str:
        """Close the current WAL segment and wait until repo2 holds it; its name."""
        segment = self.sql("SELECT pg_walfile_name(pg_switch_wal())")
        wait_until(lambda: any((a.get("max") or "") >= segment for a in self.offsite_info()["archive"]), f"{segment} in repo2")
        return segment

    def first_full_backup(self) -> str:
        """The stanza, a table of 100 rows (`before`) archived, and repo2's first full backup,
        encrypted; its label."""
        self.ok("stanza-create")
        self.sql("CREATE TABLE offsite (id integer PRIMARY KEY, batch text NOT NULL)")
        self.sql("INSERT INTO offsite SELECT id, 'before' FROM generate_series(1, 100) AS id")
        self.switch_and_archive()
        self.ok("--repo=2", "--type=full", "backup")
        (first,) = [backup["label"] for backup in self.offsite_info()["backup"]]
        assert self.offsite_info()["repo"][0]["cipher"] == "aes-256-cbc"
        return first

    def second_full_backup(self) -> str:
        """100 more rows (`between`), repo2's second full backup, then 100 rows (`after`) in WAL
        only; the name of the last segment archived."""
        self.sql("INSERT INTO offsite SELECT id, 'between' FROM generate_series(101, 200) AS id")
        self.switch_and_archive()
        self.ok("--repo=2", "--type=full", "backup")
        self.sql("INSERT INTO offsite SELECT id, 'after' FROM generate_series(201, 300) AS id")
        return self.switch_and_archive()

    def fetch_and_restore(self, last_segment: str) -> None:
        """archive-get of the last segment and a restore from repo2 alone, whose recovery fetches
        WAL from repo2: every row of both backups and of the WAL after them comes back."""
        fetched = self.rig.root / "fetched-segment"
        self.ok("--repo=2", "archive-get", last_segment, str(fetched))
        assert fetched.stat().st_size == 16 * 2**20, "a whole WAL segment, decrypted"
        restored, target = restore_from_repo2(self, "restored")
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert self.restored_rows(target, "restored") == "after|100\nbefore|100\nbetween|100"

    def restored_rows(self, target: Path, name: str) -> str:
        """The `offsite` table's rows by batch in the data directory restored at `target`, once its
        recovery, which must have fetched WAL through archive-get, has ended."""
        port, log = free_port(), self.rig.root / f"{name}.log"
        with postgres_running(target, log, self.environment, f"port={port}", "archive_mode=off"):
            wait_until(lambda: self.sql("SELECT pg_is_in_recovery()", port) == "f", f"recovery of {name} to end")
            rows = self.sql("SELECT batch, count(*) FROM offsite GROUP BY batch ORDER BY batch", port)
        assert "from archive" in log.read_text(), "recovery fetched WAL through archive-get"
        return rows


@dataclass(frozen=True)
class S3OffsiteRig(OffsiteRig):
    """The rig with repo2 in the S3 emulator's bucket, whose objects the test moves between classes."""

    offsite: OffsiteBucket


@contextlib.contextmanager
def archiving_rig(root: Path, offsite: OffsiteRepository, overrides: Mapping[str, str], fragments: Mapping[str, str] | None = None) -> Iterator[OffsiteRig]:
    """PostgreSQL 15 under `root` archiving with the repository host's config rendered with `offsite`
    as repo2; `overrides` are this machine's PGBACKREST_* settings of repo2 (endpoint, CA, credentials);
    `fragments` more rendered files for the include directory, by file name (Azure's key)."""
    repository, _ = layouts(root)
    include = root / "repository" / "conf.d"
    for directory in (include, Path(repository.paths.backup_repository), Path(repository.paths.data).parent, root / "wal", root / "run"):
        directory.mkdir(parents=True)
    config = root / "repository" / "pgbackrest.conf"
    config.write_text(render_pgbackrest_repository(repository, prod_settings().backup, offsite))
    (include / "secrets.conf").write_text(render_pgbackrest_secrets({BACKUP_ENCRYPTION_SECRET: FAKE_PASSPHRASE}))
    for name, text in (fragments or {}).items():
        (include / name).write_text(text)
    subprocess.run(["chown", "-R", "postgres:postgres", str(root)], check=True, timeout=TIMEOUT)
    rig = BackupRig(root, repository, repository, include, include, 0, 0)
    environment = rig.environment | {
        "PGBACKREST_CONFIG": str(config),
        "PGBACKREST_CONFIG_INCLUDE_PATH": str(include),
        "PGBACKREST_BACKUP_STANDBY": "n",
        "PGBACKREST_ARCHIVE_TIMEOUT": "20",
        **overrides,
    }
    data = Path(repository.paths.data)
    initdb = [POSTGRES_BIN / "initdb", "-D", data, f"--waldir={repository.paths.wal}", "--auth=trust", "--no-sync", "--username=postgres"]
    run_as("postgres", initdb, environment)
    settings = {
        "listen_addresses": "''",
        "unix_socket_directories": f"'{repository.paths.sockets}'",
        "archive_mode": "on",
        "archive_command": f"'{with_options(ARCHIVE_COMMAND, '--reset-pg1-host')}'",
        "fsync": "off",
    }
    with (data / "postgresql.conf").open("a") as conf:
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    with postgres_running(data, root / "postgresql.log", environment):
        yield OffsiteRig(rig, environment)


@contextlib.contextmanager
def rig_root(store: str) -> Iterator[Path]:
    """A directory for one rig with an object store emulator (`store`, for the messages), removed
    afterwards; the rig needs root (PostgreSQL and pgBackRest run as postgres) and HAProxy."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run PostgreSQL and pgBackRest as the postgres user")
    if not shutil.which("haproxy"):
        pytest.fail(f"HAProxy (Debian's) is missing: it terminates TLS in front of the {store} emulator")
    root = Path(tempfile.mkdtemp(prefix=f"dpc-backup-{store.lower()}-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def offsite_rig(*, without: frozenset[str] = frozenset()) -> Iterator[S3OffsiteRig]:
    """The emulator behind TLS, the bucket and users, and PostgreSQL 15 archiving with the repository
    host's rendered config (the backup agent's policy less the actions in `without`)."""
    with rig_root("S3") as root, aws_emulator(iam_enforced_after=SET_UP_REQUESTS) as emulator, tls_terminator(root, emulator.endpoint) as (port, ca_file):
        offsite = _set_up(emulator, without=without)
        overrides = {
            "PGBACKREST_REPO2_S3_ENDPOINT": "localhost",
            "PGBACKREST_REPO2_S3_PORT": str(port),
            "PGBACKREST_REPO2_S3_URI_STYLE": "path",
            "PGBACKREST_REPO2_STORAGE_CA_FILE": str(ca_file),
            "PGBACKREST_REPO2_S3_KEY_TYPE": "shared",
            "PGBACKREST_REPO2_S3_KEY": offsite.agent["AWS_ACCESS_KEY_ID"],
            "PGBACKREST_REPO2_S3_KEY_SECRET": offsite.agent["AWS_SECRET_ACCESS_KEY"],
        }
        with archiving_rig(root, S3Repository(bucket=BUCKET, region=REGION), overrides) as rig:
            yield S3OffsiteRig(rig.rig, rig.environment, offsite)


def restore_from_repo2(rig: OffsiteRig, name: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`restore --repo=2` into a new data directory, recovery fetching WAL from repo2 alone."""
    target = owned_by_postgres(rig.rig.root / name / "pgdata")
    restore_command = with_options(RESTORE_COMMAND, "--reset-pg1-host", "--repo=2", f"--pg1-path={target}")
    return rig.pgbackrest("--repo=2", f"--pg1-path={target}", f"--recovery-option=restore_command={restore_command}", "restore"), target


def test_pgbackrest_works_under_the_rendered_policy_with_the_repository_in_the_lifecycles_classes() -> None:
    with offsite_rig() as rig:
        first = rig.first_full_backup()
        rig.offsite.move_all(ARCHIVE_STORAGE_CLASS)
        last_segment = rig.second_full_backup()

        first_files = [key for key in rig.offsite.object_keys() if f"/{first}/" in key]
        assert first_files, "the first backup's files are in the bucket"
        expired = rig.ok("--repo=2", f"--set={first}", "--log-level-console=info", "expire")
        assert f"repo2: remove expired backup {first}" in expired and "repo2: 15-1 remove archive" in expired, expired
        assert not [key for key in rig.offsite.object_keys() if f"/{first}/" in key], "expire deleted the first backup's files"
        assert first not in [backup["label"] for backup in rig.offsite_info()["backup"]]

        rig.fetch_and_restore(last_segment)

        rig.offsite.move_all("GLACIER")
        failures = {
            "backup": rig.pgbackrest("--repo=2", "--type=full", "backup"),
            "archive-get": rig.pgbackrest("--repo=2", "archive-get", last_segment, str(rig.rig.root / "fetched-again")),
            "restore": restore_from_repo2(rig, "restored-from-glacier")[0],
        }
        for command, result in failures.items():
            assert result.returncode != 0, f"{command} read a repository in GLACIER: {result.stdout}"
            assert "InvalidObjectState" in result.stdout + result.stderr, f"{command}: {result.stdout}{result.stderr}"


def test_without_delete_every_backup_fails() -> None:
    """The policy before this change: a backup replaces the stanza's `latest` object with a DELETE
    (and its expire deletes what retention lets go), so every backup to repo2 exits non-zero."""
    with offsite_rig(without=OLD_POLICY_ACTIONS) as rig:
        rig.ok("stanza-create")
        rig.switch_and_archive()
        for _ in range(2):
            refused = rig.pgbackrest("--repo=2", "--type=full", "backup")
            output = refused.stdout + refused.stderr
            assert refused.returncode != 0, output
            assert "AccessDenied" in output and f"DELETE /{BUCKET}/{PREFIX}/backup/{BACKUP_STANZA}/latest" in output, output
        assert rig.offsite_info()["backup"] == [], "no backup completed"
