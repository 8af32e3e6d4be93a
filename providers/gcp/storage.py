"""GCP storage: a Cloud KMS key with rotation, SSD persistent disks under it, and the offsite
backup bucket: CMEK, versioned, uniform access, public access prevented, with design §4.4's
lifecycle in classes pgBackRest reads at once (every Cloud Storage class serves reads at once), dual-region where the stack asks for a geo copy.

Disks are zonal, every one of them (design §4.1 departs here from the original's "regional
persistent disks"). Data and WAL: Patroni already keeps a synchronous standby in another zone
(design §5.2, RPO 0) and fails over to it in seconds; a regional disk would copy every write to a
second zone once more, before the commit the synchronous standby already holds back, on the
disks whose fsyncs set commit latency, at twice the price. Backups (repo1): a zone's outage makes
them unreachable, not lost (persistent disks are replicated within their zone), the offsite
repository meanwhile restores any of its fulls and the WAL since the newest, and a regional copy
of prod's 5 TB would double the stack's largest disk.

TLS is not configured: Cloud Storage serves its JSON and XML APIs over HTTPS only, so AWS's
TLS-only bucket policy has no counterpart to write.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.base import Scope
from components.storage import StoragePlan, StorageResult
from providers.gcp.labels import scope_labels
from providers.gcp.network import gcp_name
from providers.gcp.settings import GCS_ARCHIVE_CLASS, GCS_INFREQUENT_ACCESS_CLASS, multi_region

KEY_ROTATION_PERIOD = f"{90 * 24 * 3600}s"
"""A new key version every 90 days; versions before it keep decrypting what they encrypted."""

KEY_DESTROY_DELAY = f"{30 * 24 * 3600}s"
"""How long a destroyed key version can still be restored: AWS's 30-day deletion window."""

DISK_TYPE = "pd-ssd"
"""SSD persistent disks, whose IOPS and throughput follow their size (`VolumePlan.performance` None)."""

ENCRYPTER_DECRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"

@dataclass(frozen=True)
class BucketLocation:
    """Where the backup bucket lives: one region, or two as a dual-region under a key of the
    multi-region containing both.
    """

    location: str
    data_locations: tuple[str, ...]
    """The two regions of a dual-region bucket; empty for a regional one."""
    key_location: str


def bucket_location(region: str, replica_region: str | None) -> BucketLocation:
    """The stack's region alone, or the dual-region of it and `replica_region` (design §4.4's geo copy).

    A dual-region, not a second bucket copied by Storage Transfer Service: Cloud Storage writes
    every object to both regions itself (the default replication, most objects within an hour),
    and the bucket stays readable and writable from either region through one name, which
    pgBackRest's repo2 needs. Deletes reach both regions, as delete markers reach AWS's replica
    (design §4.4); versioning keeps what pgBackRest deleted for 30 days in both.
    """
    if replica_region is None:
        return BucketLocation(region.upper(), (), region)
    pair = multi_region(region, replica_region)
    if pair is None:
        raise ValueError(f"{region} and {replica_region} make no dual-region (providers.gcp.settings checks this first)")
    return BucketLocation(pair[0], (region.upper(), replica_region.upper()), pair[1])


def lifecycle_rules(plan: StoragePlan) -> list[gcp.storage.BucketLifecycleRuleArgsDict]:
    """Design §4.4 as Cloud Storage applies it: to the infrequent-access class and then the archive
    class of `providers.gcp.settings` (which says why those) on the settings' days;
    no current object ever deleted (pgBackRest's `expire` owns retention); versions pgBackRest
    deleted or overwrote removed `noncurrent_expire_after_days` after (a deleted object becomes
    such a version at once: Cloud Storage has no delete markers to clean up).

    No rule for unfinished uploads: pgBackRest writes large files with the JSON API's resumable
    uploads, whose sessions expire after a week by themselves; the lifecycle's
    AbortIncompleteMultipartUpload acts on XML API multipart uploads only.
    """
    lifecycle = plan.lifecycle
    return [
        {
            "action": {"type": "SetStorageClass", "storage_class": GCS_INFREQUENT_ACCESS_CLASS},
            "condition": {"age": lifecycle.infrequent_access_after_days, "matches_storage_classes": ["STANDARD"]},
        },
        {
            "action": {"type": "SetStorageClass", "storage_class": GCS_ARCHIVE_CLASS},
            "condition": {"age": lifecycle.archive_after_days, "matches_storage_classes": ["STANDARD", GCS_INFREQUENT_ACCESS_CLASS]},
        },
        {
            "action": {"type": "Delete"},
            "condition": {"days_since_noncurrent_time": lifecycle.noncurrent_expire_after_days, "with_state": "ARCHIVED"},
        },
    ]


@dataclass(frozen=True)
class ServiceAgents:
    """The service agents that use the stack's keys, as IAM members, and what must exist before
    they are granted (the agents created on first use).
    """

    members: dict[str, pulumi.Output[str]]
    created: list[pulumi.Resource]


def _service_agents(scope: Scope) -> ServiceAgents:
    """The service agents that use the stack's keys for their service.

    Each is obtained so that its grant cannot name an agent that does not exist yet:
    - Secret Manager and Artifact Registry create theirs on first use, so a new project has none
      when the key is granted: `ServiceIdentity` creates it (the services' generateServiceIdentity),
      and the grant waits for it. Its member is the documented address from the project number,
      not the resource's output, so it is known at a first preview, where the policy pack judges it.
    - Cloud Storage's is created by the call `storage.get_project_service_account` makes (the way
      the provider's documentation gives; its `ServiceIdentity` returns no address).
    - Compute Engine's exists as soon as the API is enabled and is not served by
      generateServiceIdentity: its documented address, from the project number.
    """
    invoke = pulumi.InvokeOutputOptions(parent=scope.component)
    project_number = gcp.organizations.get_project_output(opts=invoke).number

    def agent(domain: str) -> pulumi.Output[str]:
        return project_number.apply(lambda number: f"serviceAccount:service-{number}@{domain}.iam.gserviceaccount.com")

    members = {"compute": agent("compute-system"), "storage": gcp.storage.get_project_service_account_output(opts=invoke).member}
    created: list[pulumi.Resource] = []
    for service in ("secretmanager", "artifactregistry"):
        created.append(gcp.projects.ServiceIdentity(scope.child(f"{service}-agent"), service=f"{service}.googleapis.com", opts=scope.opts()))
        members[service] = agent(f"gcp-sa-{service}")
    return ServiceAgents(members, created)


def _key(scope: Scope, name: str, location: pulumi.Input[str], agents: ServiceAgents) -> pulumi.Output[str]:
    """A key ring and a rotated key in `location`, and the services' agents allowed to use the key;
    returns the key's id as an output that depends on those grants, so that every resource
    encrypted with it, here or in another component, is created only once its service may use it
    (Cloud KMS refuses the service otherwise, and the create fails).

    Names are left to Pulumi (the resource name and a random suffix, kept in the state): a key ring
    and a key can never be deleted, so a fixed name would make a stack that was destroyed
    impossible to create again under its own name, while the state keeps each name stable for the
    stack's life.
    """
    ring = gcp.kms.KeyRing(scope.child(f"{name}-ring"), location=location, opts=scope.stateful_opts())
    key = gcp.kms.CryptoKey(
        scope.child(name),
        key_ring=ring.id,
        purpose="ENCRYPT_DECRYPT",
        rotation_period=KEY_ROTATION_PERIOD,
        destroy_scheduled_duration=KEY_DESTROY_DELAY,
        labels=scope_labels(scope, Name=scope.child(name)),
        opts=scope.stateful_opts(),
    )
    grants = [
        gcp.kms.CryptoKeyIAMMember(
            scope.child(f"{name}-{service}-agent"),
            crypto_key_id=key.id,
            role=ENCRYPTER_DECRYPTER,
            member=member,
            opts=scope.opts(depends_on=agents.created),
        )
        for service, member in sorted(agents.members.items())
    ]
    return pulumi.Output.all(key.id, *(grant.id for grant in grants)).apply(lambda ids: str(ids[0]))


def _placement(where: BucketLocation) -> gcp.storage.BucketCustomPlacementConfigArgsDict | None:
    """A dual-region's two regions; nothing for a regional bucket."""
    return {"data_locations": list(where.data_locations)} if where.data_locations else None


def _backup_bucket(scope: Scope, plan: StoragePlan, where: pulumi.Output[BucketLocation], key_id: pulumi.Output[str]) -> gcp.storage.Bucket:
    """Private by construction (uniform access: IAM only, no object ACLs; public access
    prevention enforced), versioned, encrypted by default with `key`, with design §4.4's lifecycle.
    """
    return gcp.storage.Bucket(
        scope.child("backups"),
        location=where.apply(lambda w: w.location),
        custom_placement_config=where.apply(_placement),
        storage_class="STANDARD",
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        versioning={"enabled": True},
        encryption={"default_kms_key_name": key_id},
        lifecycle_rules=lifecycle_rules(plan),
        force_destroy=False,
        labels=scope_labels(scope, Name=scope.child("backups"), Purpose="offsite-backups"),
        opts=scope.stateful_opts(),
    )


def build_storage(scope: Scope, plan: StoragePlan) -> StorageResult:
    """Creates the stack's key, the disks, and the backup bucket (under a key of the multi-region
    when it is a dual-region: a key is used only in its own location).
    """
    region = gcp.organizations.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=scope.component)).region
    agents = _service_agents(scope)
    where = region.apply(lambda r: bucket_location(r, plan.replica_region))
    key_id = _key(scope, "key", region, agents)
    volume_ids: dict[str, pulumi.Output[str]] = {}
    for volume in plan.volumes:
        disk = gcp.compute.Disk(
            scope.child(volume.name),
            name=gcp_name(scope.child(volume.name)),
            zone=volume.zone,
            size=volume.size_gb,
            type=DISK_TYPE,
            disk_encryption_key={"kms_key_self_link": key_id},
            create_snapshot_before_destroy=True,
            labels=scope_labels(scope, Name=scope.child(volume.name), Node=volume.node, Purpose=volume.purpose),
            opts=scope.stateful_opts(),
        )
        volume_ids[volume.name] = disk.id
    storage_agent = ServiceAgents({"storage": agents.members["storage"]}, [])
    bucket_key_id = key_id if plan.replica_region is None else _key(scope, "backups-key", where.apply(lambda w: w.key_location), storage_agent)
    bucket = _backup_bucket(scope, plan, where, bucket_key_id)
    return StorageResult(key_id=key_id, volume_ids=volume_ids, backup_bucket_name=bucket.name)
