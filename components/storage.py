"""Storage: the customer-managed key, the data/WAL/backup volumes, and the offsite backup bucket
with its lifecycle (design §4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components.base import Component
from dpc.topology import VolumePlan


@dataclass(frozen=True)
class BucketLifecycle:
    """Design §4.4: infrequent access, then archive, in classes the backup tool reads at once.
    No current object expires: the backup tool's own expiry owns retention; the lifecycle removes
    only the versions it deleted or overwrote, `noncurrent_expire_after_days` later (a window to
    undo a mistaken delete).
    """

    infrequent_access_after_days: int
    archive_after_days: int
    noncurrent_expire_after_days: int = field(default=30, kw_only=True)


@dataclass(frozen=True)
class StoragePlan:
    """The stack's encrypted storage."""

    volumes: tuple[VolumePlan, ...]
    lifecycle: BucketLifecycle
    replica_region: str | None
    """Where the offsite bucket is replicated to (design §4.4: geo-replicated), under a key of that region."""


@dataclass(frozen=True)
class StorageResult:
    """The key every other encrypted resource uses, the volumes by name, the backup bucket."""

    key_id: pulumi.Output[str]
    """The stack key as the cloud's APIs name it (a KMS key ARN on AWS, a CryptoKey id on GCP)."""
    volume_ids: dict[str, pulumi.Output[str]]
    backup_bucket_name: pulumi.Output[str]
    offsite_credential: pulumi.Output[str] | None = None
    """The secret the backup tool needs to reach the offsite store, a Pulumi secret; None where the
    backup node reaches it with its own identity (AWS, GCP). On Azure the storage account's key:
    pgBackRest 2.45 cannot use a managed identity (`dpc.render.backup.AzureRepository`)."""


class Storage(Component[StoragePlan, StorageResult]):
    """The cluster's storage."""

    type_token = "dpc:storage:Storage"
