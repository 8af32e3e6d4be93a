"""pgBackRest: the repository host's configuration (the backup node), each database host's, and the
secret fragments: the repositories' cipher passphrase, and on Azure the offsite repository's key
(design §4.2, §4.3, §9.8).

Topology. The backup node is pgBackRest's repository host: it owns repo1 (a posix repository on
the backup volume) and, in the clouds, repo2 (the offsite bucket, reached with the instance's IAM
role; on Azure with the storage account's key, which only the backup node holds). Its backup
agent runs `pgbackrest server`, the TLS endpoint the database hosts archive WAL to, and takes the
scheduled backups, reading the files from a replica's `pgbackrest server`.
Nothing uses SSH: both directions are pgBackRest's TLS protocol with the cluster's certificates,
each side allowing only the other's certificate (`tls-server-auth`).

Schedule and retention. pgBackRest knows full, differential and incremental backups, and a
retention per repository; it has no daily/weekly/monthly tiers inside one repository. The seed's
tiers map onto it as follows (the backup agent, images/postgres/backup_agent.py, runs the schedule):

- daily at 02:00 UTC: a differential backup to repo1 (everything changed since the last full);
  on Sundays and on the 1st of the month a full backup instead. A differential restores like a
  full (full + one differential), so the seed's "daily full" keeps its meaning at a fraction of
  the time and space.
- repo1 keeps full backups by age (`repo1-retention-full-type=time`) for the longest of the WAL,
  daily and weekly retentions (30 days by default). pgBackRest then keeps at least one full
  older than that, with all WAL since: point-in-time recovery over the whole WAL retention.
  Differentials are kept by count, one a day: `daily_retention_days` of them.
- weekly (Sunday) and monthly (1st) full backups are also taken to repo2, the offsite bucket,
  which keeps them by age for `offsite_expire_after_days` (design §4.4: 7 years; at least the
  monthly retention, which settings check). pgBackRest's `expire` deletes them then: the
  bucket's lifecycle only moves objects to colder classes that pgBackRest still reads at once
  (infrequent access, then Glacier Instant Retrieval) and never expires a current object, since
  expiring `archive.info` or `backup.info` under pgBackRest would break the repository. With no
  tiers inside a repository, the weekly fulls stay as long as the monthly ones: more than the
  seed's four weeks, never less.
- WAL in repo2 is kept as its backups need, not for 7 years of point-in-time recovery (what
  pgBackRest keeps by default with time-based retention): the segments that make each full
  consistent, and continuous WAL from the newest full on (`repo2-retention-archive-type=full`,
  `repo2-retention-archive=1`). Point-in-time recovery over the WAL retention is repo1's; repo2
  is the copy that survives losing the cluster, each of its fulls restorable to its end.
- repo2 bundles a backup's small files into larger objects (`repo2-bundle`): a data directory is
  thousands of small files, and S3 bills every PUT, and bills every object in infrequent access
  and Glacier Instant Retrieval as at least 128 KB. Fewer objects also make a backup to the
  bucket faster (the contract test's full backup to a local S3 API: 12 s without, 3–4 s with).
- WAL is archived continuously to every repository (`archive-async`, so one unreachable
  repository does not hold back the others).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from dpc.cluster import BACKUP_ENCRYPTION_SECRET, BACKUP_STANZA, ClusterLayout, Member, Port, certificate_requests
from dpc.render import tls_files
from dpc.settings import BackupSettings

PGBACKREST_CONFIG = "/etc/pgbackrest/pgbackrest.conf"
"""Where pgBackRest reads its configuration by default: the rendered file is mounted here, so the
archive and restore commands Patroni runs need no `--config`."""

PGBACKREST_INCLUDE_DIR = "/etc/pgbackrest/conf.d"
"""pgBackRest's default `config-include-path`: it merges every *.conf file in it. The secret
fragment (`render_pgbackrest_secrets`) is mounted here as a Docker secret."""

CIPHER_TYPE = "aes-256-cbc"
"""Design §4.2: backups encrypted with AES-256; pgBackRest encrypts every file of the repository."""

COMPRESSION = {"compress-type": "zst", "compress-level": "3"}
"""Design §4.2: zstd at level 3."""

PROCESS_MAX = 2
"""Parallel processes for a backup (compression and encryption run in them) and for the
asynchronous WAL archive. Two keep a 500 GB full near 30 minutes (design §4.2) without taking more
than a share of the replica's CPU, which also serves reads."""

OFFSITE_KEY_PREFIX = "/pgbackrest"
"""Where in the offsite bucket the repository lives (object keys `pgbackrest/...`)."""

OFFSITE_CONTINUOUS_WAL_FULLS = 1
"""How many of repo2's newest fulls keep continuous WAL after them (point-in-time recovery);
older fulls keep only the WAL that makes them consistent."""


def _check_key_prefix(prefix: str) -> None:
    """PgBackRest takes a repository's path only as an absolute one (`/pgbackrest`)."""
    if not prefix.startswith("/"):
        raise ValueError(f"the offsite key prefix must start with '/': {prefix!r}")


@dataclass(frozen=True)
class S3Repository:
    """The offsite copy in an S3 bucket, reached with the backup node's IAM role (no keys anywhere)."""

    bucket: str
    region: str
    endpoint: str | None = None
    """The S3 endpoint; None for AWS's regional endpoint."""
    key_prefix: str = OFFSITE_KEY_PREFIX

    def __post_init__(self) -> None:
        _check_key_prefix(self.key_prefix)

    @property
    def s3_endpoint(self) -> str:
        """PgBackRest needs the endpoint spelled out: AWS's regional one unless another is given."""
        return self.endpoint or f"s3.{self.region}.amazonaws.com"

    def options(self, repo: int) -> dict[str, str]:
        """The repository's options in pgbackrest.conf, as repository `repo`."""
        return {
            f"repo{repo}-type": "s3",
            f"repo{repo}-path": self.key_prefix,
            f"repo{repo}-s3-bucket": self.bucket,
            f"repo{repo}-s3-region": self.region,
            f"repo{repo}-s3-endpoint": self.s3_endpoint,
            f"repo{repo}-s3-key-type": "auto",
        }


@dataclass(frozen=True)
class GcsRepository:
    """The offsite copy in a Cloud Storage bucket, reached with the backup node's service account.

    `repoN-gcs-key-type=auto`: pgBackRest takes an access token for the instance's service account
    from the GCE metadata server (pgBackRest 2.45, Debian 12's, the image's, has it; `service`, the
    default, would need a service account key file on the node, and `token` a token fixed in the
    file, for tests). No key anywhere, as with the instance role on AWS. The bucket's own key
    (CMEK) needs nothing from pgBackRest: Cloud Storage's service agent uses it.
    """

    bucket: str
    endpoint: str | None = None
    """Another GCS endpoint (`host[:port]`, an emulator in tests); None for Google's, pgBackRest's default."""
    key_prefix: str = OFFSITE_KEY_PREFIX

    def __post_init__(self) -> None:
        _check_key_prefix(self.key_prefix)

    def options(self, repo: int) -> dict[str, str]:
        """The repository's options in pgbackrest.conf, as repository `repo`."""
        endpoint = {f"repo{repo}-gcs-endpoint": self.endpoint} if self.endpoint else {}
        return {
            f"repo{repo}-type": "gcs",
            f"repo{repo}-path": self.key_prefix,
            f"repo{repo}-gcs-bucket": self.bucket,
            f"repo{repo}-gcs-key-type": "auto",
            **endpoint,
        }


AZURE_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
"""A storage account's name as Azure allows it: 3 to 24 lowercase letters and digits."""

AZURE_CONTAINER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
"""A blob container's name as Azure allows it: 3 to 63 lowercase letters, digits and single hyphens
between them."""


@dataclass(frozen=True)
class AzureRepository:
    """The offsite copy in a blob container of an Azure storage account, reached with the account's
    shared key (design §9.8).

    `repoN-azure-key-type=shared`. pgBackRest 2.45 (Debian 12's, the image's) authenticates to Azure
    only with a `shared` key or a `sas` token (`pgbackrest help backup repo-azure-key-type`); support
    for Azure managed identities came in pgBackRest 2.58.0 (release notes of 2026-01-19), which no
    Debian stable release ships yet. So, unlike the instance role on AWS and the service account on
    GCP, the backup node needs a secret: the account key, which the account has to accept (shared
    key access stays on, a departure, design §11.33). A SAS would be narrower but expires, and
    a SAS that expires stops the backups until someone renews it; the key does not (rotating it is
    an operator's `pulumi up`, design §9.8).

    The key is not in pgbackrest.conf, which is a Docker config (not a secret): it goes into
    `render_pgbackrest_offsite_secrets`, a Docker secret mounted on the backup agent alone, never on
    a database host (they reach repo2 through the repository host, as on every cloud).
    """

    account: str
    container: str
    endpoint: str | None = None
    """Another blob endpoint (an emulator's host in tests); None for Azure's, pgBackRest's default
    (`blob.core.windows.net`, the account's host `<account>.blob.core.windows.net`)."""
    port: int | None = None
    """The endpoint's port; None for 443."""
    uri_style: Literal["host", "path"] | None = None
    """`path` where the endpoint serves several accounts under one host (`/<account>/...`, an
    emulator); None for pgBackRest's default, `host`."""
    key_prefix: str = OFFSITE_KEY_PREFIX

    def __post_init__(self) -> None:
        _check_key_prefix(self.key_prefix)
        if not AZURE_ACCOUNT_NAME.fullmatch(self.account):
            raise ValueError(f"not a storage account name (3-24 lowercase letters and digits): {self.account!r}")
        if not AZURE_CONTAINER_NAME.fullmatch(self.container):
            raise ValueError(f"not a blob container name (3-63 lowercase letters, digits, single hyphens): {self.container!r}")

    @classmethod
    def from_bucket_name(cls, bucket_name: str) -> AzureRepository:
        """The repository named as the storage builder names the offsite store on Azure
        (`StorageResult.backup_bucket_name`): `<account>/<container>`.
        """
        account, separator, container = bucket_name.partition("/")
        if not separator:
            raise ValueError(f"the offsite store on Azure is named '<account>/<container>': {bucket_name!r}")
        return cls(account=account, container=container)

    def options(self, repo: int) -> dict[str, str]:
        """The repository's options in pgbackrest.conf, as repository `repo` (no key among them)."""
        overrides = {
            f"repo{repo}-azure-endpoint": self.endpoint,
            f"repo{repo}-storage-port": None if self.port is None else str(self.port),
            f"repo{repo}-azure-uri-style": self.uri_style,
        }
        return {
            f"repo{repo}-type": "azure",
            f"repo{repo}-path": self.key_prefix,
            f"repo{repo}-azure-account": self.account,
            f"repo{repo}-azure-container": self.container,
            f"repo{repo}-azure-key-type": "shared",
            **{option: value for option, value in overrides.items() if value is not None},
        }


OffsiteRepository = S3Repository | GcsRepository | AzureRepository
"""The offsite repository variants, one per cloud's object store (each cloud package names its own)."""


ARCHIVE_COMMAND = f"pgbackrest --stanza={BACKUP_STANZA} archive-push %p"
"""PostgreSQL's archive_command on every Patroni member: push the segment to the repository host."""

RESTORE_COMMAND = f'pgbackrest --stanza={BACKUP_STANZA} archive-get %f "%p"'
"""PostgreSQL's restore_command: fetch a segment from the repository host (replicas catching up,
a rewound node rejoining, point-in-time recovery)."""

_BACKUP_CERTIFICATE_KIND = "backup certificate"


def _render(sections: Mapping[str, Mapping[str, str | tuple[str, ...]]], header: str) -> str:
    """An INI file in pgBackRest's format, sections and keys sorted so the output is stable.

    A tuple value is a list option (e.g. `tls-server-auth`): pgBackRest takes it as repeated keys.
    """
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for section in sorted(sections):
        lines += ["", f"[{section}]"]
        for key, value in sorted(sections[section].items()):
            values = value if isinstance(value, tuple) else (value,)
            lines += [f"{key}={item}" for item in values]
    return "\n".join(lines) + "\n"


def _common(layout: ClusterLayout) -> dict[str, str]:
    """What every pgBackRest process of the cluster shares: compression, parallelism, and logging
    to the console only, which the container runtime collects (no log files in the image).
    """
    return {
        **COMPRESSION,
        "process-max": str(PROCESS_MAX),
        "lock-path": f"{layout.paths.pgbackrest_spool}/lock",
        "log-level-file": "off",
    }


def _tls_server(layout: ClusterLayout, member: Member, certificate: str, clients: tuple[str, ...]) -> dict[str, str | tuple[str, ...]]:
    """`pgbackrest server`'s TLS endpoint: the member's certificate, the cluster CA, and only the
    given client certificates (by common name) allowed, for this cluster's stanza only.
    """
    files = tls_files(layout, certificate)
    return {
        "tls-server-address": member.listen,
        "tls-server-port": str(Port.PGBACKREST),
        "tls-server-cert-file": files.cert,
        "tls-server-key-file": files.key,
        "tls-server-ca-file": files.ca,
        "tls-server-auth": tuple(f"{client}={BACKUP_STANZA}" for client in clients),
    }


def _backup_client_name(layout: ClusterLayout) -> str:
    """The common name of the repository host's certificate, which the database hosts allow."""
    for request in certificate_requests(layout):
        if request.name == layout.backup.name:
            return request.common_name
    raise LookupError(f"no {_BACKUP_CERTIFICATE_KIND} named {layout.backup.name!r} in the cluster's certificate requests")


def _repository_retention(index: int, full_days: int, diff_count: int | None = None, wal_fulls: int | None = None) -> dict[str, str]:
    """Retention of one repository: full backups by age (with their WAL), differentials by count,
    and continuous WAL after only the newest `wal_fulls` fulls where given.
    """
    retention = {f"repo{index}-retention-full-type": "time", f"repo{index}-retention-full": str(full_days)}
    if diff_count is not None:
        retention[f"repo{index}-retention-diff"] = str(diff_count)
    if wal_fulls is not None:
        retention |= {f"repo{index}-retention-archive-type": "full", f"repo{index}-retention-archive": str(wal_fulls)}
    return retention


def local_full_retention_days(backup: BackupSettings) -> int:
    """How long repo1 keeps full backups: the longest of the WAL (point-in-time recovery), daily
    and weekly retentions, so each of them is honoured by the one repository.
    """
    return max(backup.wal_retention_days, backup.daily_retention_days, backup.weekly_retention_weeks * 7)


def offsite_full_retention_days(backup: BackupSettings) -> int:
    """How long the offsite repository keeps its weekly and monthly full backups: the offsite
    retention, which settings hold to at least the monthly retention.
    """
    return backup.offsite_expire_after_days


def render_pgbackrest_repository(layout: ClusterLayout, backup: BackupSettings, offsite: OffsiteRepository | None) -> str:
    """pgbackrest.conf of the repository host (the backup node's backup agent).

    repo1 is the backup volume, repo2 the offsite bucket when there is one; both encrypted with
    the passphrase of the secret fragment. The Patroni members are pg1…pgN, reached over TLS with
    the backup certificate; backups read from a standby (`backup-standby`) so the primary only
    does the checkpoint (`start-fast`, so a backup starts at once rather than at the next one).
    """
    files = tls_files(layout, layout.backup.name)
    repositories: dict[str, str] = {
        "repo1-type": "posix",
        "repo1-path": layout.paths.backup_repository,
        "repo1-cipher-type": CIPHER_TYPE,
        **_repository_retention(1, local_full_retention_days(backup), backup.daily_retention_days),
    }
    if offsite is not None:
        repositories |= {
            **offsite.options(2),
            "repo2-bundle": "y",
            "repo2-cipher-type": CIPHER_TYPE,
            **_repository_retention(2, offsite_full_retention_days(backup), wal_fulls=OFFSITE_CONTINUOUS_WAL_FULLS),
        }
    database_hosts: dict[str, str] = {}
    for index, member in enumerate(layout.patroni, start=1):
        database_hosts |= {
            f"pg{index}-host": member.host,
            f"pg{index}-host-type": "tls",
            f"pg{index}-host-port": str(Port.PGBACKREST),
            f"pg{index}-host-cert-file": files.cert,
            f"pg{index}-host-key-file": files.key,
            f"pg{index}-host-ca-file": files.ca,
            f"pg{index}-path": layout.paths.data,
            f"pg{index}-socket-path": layout.paths.sockets,
            f"pg{index}-port": str(Port.POSTGRES),
        }
    client_names = tuple(member.name for member in layout.patroni)
    return _render(
        {
            "global": {
                **_common(layout),
                **repositories,
                "start-fast": "y",
                "backup-standby": "y",
                **_tls_server(layout, layout.backup, layout.backup.name, client_names),
            },
            BACKUP_STANZA: database_hosts,
        },
        "pgBackRest on the backup node: the repository host (rendered by dpc; the cipher passphrase\n"
        f"is in {PGBACKREST_INCLUDE_DIR}, a Docker secret).",
    )


def render_pgbackrest_database_host(layout: ClusterLayout, member: Member, *, offsite: bool) -> str:
    """pgbackrest.conf of one Patroni member, read by the archive and restore commands Patroni runs
    (`ARCHIVE_COMMAND`, `RESTORE_COMMAND`) and by the member's `pgbackrest server`.

    Every repository lives on the repository host: repo1, and repo2 when there is an `offsite`
    copy, are reached through it over TLS with the member's certificate, so the database hosts
    need no access to the bucket. A `pgbackrest server` serves a client's session with the
    client's repository options, not its own, and encryption happens in the client: so each
    repository's path and cipher type are repeated here, and the database hosts read the cipher
    passphrase from the same secret fragment as the repository host (the contract test found
    both the hard way). Archiving is asynchronous, so PostgreSQL hands over segments at once and
    one slow repository does not hold back the other. The member's TLS server lets in only the
    repository host's certificate.

    `archive-push-queue-max` is the WAL volume's cap on WAL not yet archived (`layout.wal`,
    design §5.3): pgBackRest counts the segments PostgreSQL has marked ready, and when a push starts
    with more than that queued, reports the whole queue archived without archiving it, with a
    warning in PostgreSQL's log ("dropped WAL file ... because archive queue exceeded ..."). A
    repository that cannot take WAL then interrupts point-in-time recovery until the next backup
    (design §4.3) instead of filling the volume and stopping the primary. An unreachable one holds
    each push for `io-timeout` (60 s) before it fails, so the queue stays over the cap for a minute
    or two before it is dropped: the budget's headroom takes that.
    """
    files = tls_files(layout, member.name)
    repositories: dict[str, str] = {}
    paths = {1: layout.paths.backup_repository, 2: OFFSITE_KEY_PREFIX}
    for index in (1, 2) if offsite else (1,):
        repositories |= {
            f"repo{index}-path": paths[index],
            f"repo{index}-cipher-type": CIPHER_TYPE,
            f"repo{index}-host": layout.backup.host,
            f"repo{index}-host-type": "tls",
            f"repo{index}-host-port": str(Port.PGBACKREST),
            f"repo{index}-host-cert-file": files.cert,
            f"repo{index}-host-key-file": files.key,
            f"repo{index}-host-ca-file": files.ca,
        }
    return _render(
        {
            "global": {
                **_common(layout),
                **repositories,
                "archive-async": "y",
                "archive-push-queue-max": f"{layout.wal.archive_queue_mb}MiB",
                "spool-path": layout.paths.pgbackrest_spool,
                **_tls_server(layout, member, member.name, (_backup_client_name(layout),)),
            },
            BACKUP_STANZA: {
                "pg1-path": layout.paths.data,
                "pg1-socket-path": layout.paths.sockets,
                "pg1-port": str(Port.POSTGRES),
            },
        },
        f"pgBackRest on {member.name}: a database host of the repository host {layout.backup.host} (rendered by dpc).",
    )


def render_pgbackrest_secrets(secrets: Mapping[str, str]) -> str:
    """The fragment with the repositories' cipher passphrase, for `PGBACKREST_INCLUDE_DIR`.

    pgBackRest reads its passphrase from its configuration or its environment; the environment is
    not for secrets, so it is this file, delivered as a Docker secret, to the repository host and
    to every database host (which encrypt and decrypt what they archive and fetch). Both
    repositories share the passphrase.
    """
    passphrase = secrets[BACKUP_ENCRYPTION_SECRET]
    if not passphrase or "\n" in passphrase:
        raise ValueError(f"the {BACKUP_ENCRYPTION_SECRET} secret must be one non-empty line")
    return _render(
        {"global": {"repo1-cipher-pass": passphrase, "repo2-cipher-pass": passphrase}},
        "pgBackRest's repository cipher passphrase (a Docker secret; rendered by dpc).",
    )


def render_pgbackrest_offsite_secrets(offsite: OffsiteRepository, key: str) -> str:
    """The fragment with the offsite repository's key, for `PGBACKREST_INCLUDE_DIR` on the backup
    agent alone: only an Azure repository takes one (`AzureRepository`: the storage account's shared
    key as `repo2-azure-key`); S3 and Cloud Storage are reached with the machine's identity.

    A fragment of its own rather than a line in `render_pgbackrest_secrets`, which every database
    host mounts too: the account key reads and deletes every backup in the account, and a database
    host (PostgreSQL's superuser can read its files) must not be able to.
    """
    if not isinstance(offsite, AzureRepository):
        raise ValueError(f"{type(offsite).__name__} takes no key: the backup node reaches it with its own identity")
    if not key or "\n" in key:
        raise ValueError("the offsite repository's key must be one non-empty line")
    return _render(
        {"global": {"repo2-azure-key": key}},
        "pgBackRest's key to the offsite repository (a Docker secret of the backup agent alone; rendered by dpc).",
    )
