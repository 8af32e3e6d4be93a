"""AWS storage: a customer-managed KMS key with rotation, gp3 volumes encrypted with it, and the
offsite backup bucket: SSE-KMS, versioned, public access blocked, TLS only, with the seed's
lifecycle (Standard-IA, then archive) in classes pgBackRest reads at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.base import Scope
from components.storage import StoragePlan, StorageResult
from dpc.render.backup import OFFSITE_KEY_PREFIX
from providers.aws.arns import bucket_arn
from providers.aws.iam import service_trust_policy
from providers.aws.settings import ARCHIVE_STORAGE_CLASS, S3_INFREQUENT_ACCESS_CLASS


def _key_policy(account: str, partition: str, logs_region: str | None) -> str:
    """The account administers the key through IAM; CloudWatch Logs of `logs_region` may use it for
    this account's log groups (the stack's own key only: the replica key encrypts backups alone).
    """
    statements: list[dict[str, object]] = [
        {
            "Sid": "AccountAdministersTheKeyThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
    ]
    if logs_region is not None:
        statements.append({
            "Sid": "CloudWatchLogsEncryptsThisStacksLogs",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{logs_region}.amazonaws.com"},
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            "Resource": "*",
            "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:{partition}:logs:{logs_region}:{account}:log-group:*"}},
        })
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def _tls_only_policy(bucket_arn: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyPlaintextTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "DenyTlsOlderThan12",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
            },
        ],
    }, sort_keys=True)


@dataclass(frozen=True)
class BucketParts:
    """A bucket, its ARN and its versioning, which replication must wait for on both sides."""

    bucket: aws.s3.Bucket
    arn: pulumi.Output[str]
    """Made from the bucket's name, which the provider sets before a preview: the ARN the cloud
    returns is only known once the bucket exists, and the policies built from it (TLS only,
    replication) could not be reviewed at preview.
    """
    versioning: aws.s3.BucketVersioning


def _bucket_arn(partition: pulumi.Input[str], bucket: aws.s3.Bucket) -> pulumi.Output[str]:
    """The ARN S3 gives a bucket: a bucket's ARN is its partition and its (globally unique) name."""
    return pulumi.Output.all(partition, bucket.bucket).apply(lambda a: bucket_arn(a[0], a[1]))


REPLICA_STORAGE_CLASS = "STANDARD"
"""The class replication writes copies in: the source object's own, so the replica bucket's
lifecycle moves them on the same days as the source's (infrequent access bills 30 days at least:
WAL that pgBackRest expires within the week would be paid for a month there)."""


def _lifecycle_rules(plan: StoragePlan) -> list[aws.s3.BucketLifecycleConfigurationRuleArgsDict]:
    """The offsite repository's lifecycle: to Standard-IA and then to `ARCHIVE_STORAGE_CLASS` on the
    settings' days; no expiry of current objects (pgBackRest's `expire` owns retention, and an
    expired `archive.info` would break the repository); versions pgBackRest deleted or overwrote
    removed after a grace period, then their leftover delete markers; unfinished multipart
    uploads (a backup killed halfway) aborted after a week.
    """
    lifecycle = plan.lifecycle
    return [{
        "id": "offsite-retention",
        "status": "Enabled",
        "filter": {"prefix": ""},
        "transitions": [
            {"days": lifecycle.infrequent_access_after_days, "storage_class": S3_INFREQUENT_ACCESS_CLASS},
            {"days": lifecycle.archive_after_days, "storage_class": ARCHIVE_STORAGE_CLASS},
        ],
        "expiration": {"expired_object_delete_marker": True},
        "noncurrent_version_expiration": {"noncurrent_days": lifecycle.noncurrent_expire_after_days},
        "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
    }]


def _backup_bucket(
    scope: Scope, plan: StoragePlan, key: aws.kms.Key, *, name: str, partition: pulumi.Output[str], provider: aws.Provider | None = None
) -> BucketParts:
    """A private, versioned, KMS-encrypted, TLS-only bucket with the seed's lifecycle: the offsite
    backups, and their copy in the replica region (`provider`).
    """
    on = {"provider": provider} if provider else {}
    bucket = aws.s3.Bucket(
        scope.child(name),
        force_destroy=False,
        tags=scope.tags_with(Name=scope.child(name), Purpose="offsite-backups"),
        opts=scope.stateful_opts(**on),
    )
    arn = _bucket_arn(partition, bucket)
    aws.s3.BucketOwnershipControls(
        scope.child(f"{name}-ownership"),
        bucket=bucket.id,
        rule={"object_ownership": "BucketOwnerEnforced"},
        opts=scope.opts(**on),
    )
    block = aws.s3.BucketPublicAccessBlock(
        scope.child(f"{name}-public-access"),
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=scope.opts(**on),
    )
    versioning = aws.s3.BucketVersioning(
        scope.child(f"{name}-versioning"),
        bucket=bucket.id,
        versioning_configuration={"status": "Enabled"},
        opts=scope.opts(**on),
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        scope.child(f"{name}-encryption"),
        bucket=bucket.id,
        rules=[{
            "apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms", "kms_master_key_id": key.arn},
            "bucket_key_enabled": True,
        }],
        opts=scope.opts(**on),
    )
    aws.s3.BucketPolicy(
        scope.child(f"{name}-tls-only"),
        bucket=bucket.id,
        policy=arn.apply(_tls_only_policy),
        opts=scope.opts(depends_on=[block], **on),
    )
    aws.s3.BucketLifecycleConfiguration(
        scope.child(f"{name}-lifecycle"),
        bucket=bucket.id,
        rules=_lifecycle_rules(plan),
        opts=scope.opts(**on),
    )
    return BucketParts(bucket, arn, versioning)


def backup_writer_statements(bucket_arn: str, key_arn: str | None) -> list[dict[str, object]]:
    """What pgBackRest 2.45 does to an S3 repository, and nothing more: list the bucket (`info`,
    `expire`, `archive-get`'s look-ups), read, write and delete objects under the repository's
    prefix (`expire` deletes old backups and WAL, one DELETE or a multi-object delete; multipart
    uploads need only PutObject), and use the bucket's key through S3 alone.

    pgBackRest's user guide ("S3 Support") grants these four S3 actions; its `PutObjectTagging` and
    `GetObjectVersion` serve options that 2.45 lacks (object tags, reading old versions). Listing is
    not narrowed by `s3:prefix`: the bucket holds only the repository, and the emulator the
    contract test enforces this policy with cannot evaluate conditions. SSE-KMS needs
    `kms:GenerateDataKey` to write (and for multipart uploads) and `kms:Decrypt` to read; S3 asks
    KMS with the bucket's ARN as encryption context when a bucket key is on (this bucket), the
    object's otherwise, so both are allowed. tests/contract/test_backup_s3.py runs pgBackRest
    under exactly these statements. Without the key (None), the statement on it is left out: the
    node roles hold it in a policy of their own (providers/aws/compute.py).
    """
    objects = f"{bucket_arn}/{OFFSITE_KEY_PREFIX.strip('/')}/*"
    on_objects: list[dict[str, object]] = [
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket_arn},
        {"Effect": "Allow", "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], "Resource": objects},
    ]
    if key_arn is None:
        return on_objects
    region = key_arn.split(":")[3]
    return [
        *on_objects,
        {
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": key_arn,
            "Condition": {
                "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket_arn, objects]},
            },
        },
    ]


def _replication_policy(source_bucket: str, replica_bucket: str, source_key: str, replica_key: str, regions: tuple[str, str]) -> str:
    """What S3 may do to copy the backups: read versions here, write them there, decrypt with this
    region's key and encrypt with the replica region's, through S3 only.
    """
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"], "Resource": source_bucket},
            {
                "Effect": "Allow",
                "Action": ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"],
                "Resource": f"{source_bucket}/*",
            },
            {"Effect": "Allow", "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"], "Resource": f"{replica_bucket}/*"},
            {
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": source_key,
                "Condition": {"StringLike": {"kms:ViaService": f"s3.{regions[0]}.amazonaws.com"}},
            },
            {
                "Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
                "Resource": replica_key,
                "Condition": {"StringLike": {"kms:ViaService": f"s3.{regions[1]}.amazonaws.com"}},
            },
        ],
    }, sort_keys=True)


def _key(scope: Scope, name: str, *, description: str, policy: pulumi.Output[str], provider: aws.Provider | None = None) -> aws.kms.Key:
    """A customer-managed key with yearly rotation."""
    on = {"provider": provider} if provider else {}
    return aws.kms.Key(
        scope.child(name),
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=policy,
        tags=scope.tags_with(Name=scope.child(name)),
        opts=scope.stateful_opts(**on),
    )


def _replicate(
    scope: Scope,
    plan: StoragePlan,
    source: BucketParts,
    *,
    source_key: aws.kms.Key,
    account: pulumi.Output[list[str]],
    partition: pulumi.Output[str],
    region: pulumi.Output[str],
    replica_region: str,
) -> None:
    """A copy of every backup in the replica region (design §4.4: geo-replicated), in a bucket like the
    first one under that region's own key, written by S3 replication with a role that can do only that.
    """
    provider = aws.Provider(scope.child("replica-region"), region=replica_region, opts=scope.opts())
    replica_key = _key(
        scope,
        "replica-key",
        description=f"Encrypts the copy of {scope.name}'s offsite backups in {replica_region}",
        policy=account.apply(lambda a: _key_policy(a[0], a[1], None)),
        provider=provider,
    )
    replica = _backup_bucket(scope, plan, replica_key, name="backups-replica", partition=partition, provider=provider)
    role = aws.iam.Role(
        scope.child("replication"),
        assume_role_policy=pulumi.Output.all(account, source.arn).apply(lambda a: service_trust_policy("s3.amazonaws.com", a[0][0], a[1])),
        description=f"S3 copies {scope.name}'s offsite backups to {replica_region}",
        tags=scope.tags_with(Name=scope.child("replication")),
        opts=scope.opts(),
    )
    aws.iam.RolePolicy(
        scope.child("replication"),
        role=role.id,
        policy=pulumi.Output.all(source.arn, replica.arn, source_key.arn, replica_key.arn, region).apply(
            lambda a: _replication_policy(a[0], a[1], a[2], a[3], (a[4], replica_region))
        ),
        opts=scope.opts(),
    )
    aws.s3.BucketReplicationConfig(
        scope.child("backups-replication"),
        bucket=source.bucket.id,
        role=role.arn,
        rules=[{
            "id": "geo-replica",
            "status": "Enabled",
            "filter": {"prefix": ""},
            "delete_marker_replication": {"status": "Enabled"},
            "source_selection_criteria": {"sse_kms_encrypted_objects": {"status": "Enabled"}},
            "destination": {
                "bucket": replica.arn,
                "storage_class": REPLICA_STORAGE_CLASS,
                "encryption_configuration": {"replica_kms_key_id": replica_key.arn},
            },
        }],
        opts=scope.opts(depends_on=[source.versioning, replica.versioning]),
    )


def build_storage(scope: Scope, plan: StoragePlan) -> StorageResult:
    """Creates the key, the volumes, the backup bucket and, where asked, its copy in another region."""
    invoke = pulumi.InvokeOutputOptions(parent=scope.component)
    region = aws.get_region_output(opts=invoke).region
    partition = aws.get_partition_output(opts=invoke).partition
    account = pulumi.Output.all(aws.get_caller_identity_output(opts=invoke).account_id, partition)
    key = _key(
        scope,
        "key",
        description=f"Encrypts the volumes, backups, logs and bootstrap secrets of {scope.name}",
        policy=pulumi.Output.all(account, region).apply(lambda a: _key_policy(a[0][0], a[0][1], a[1])),
    )
    aws.kms.Alias(scope.child("key-alias"), name=f"alias/dpc-{scope.name}", target_key_id=key.key_id, opts=scope.opts())
    volume_ids: dict[str, pulumi.Output[str]] = {}
    for volume in plan.volumes:
        created = aws.ebs.Volume(
            scope.child(volume.name),
            availability_zone=volume.zone,
            size=volume.size_gb,
            type="gp3",
            iops=volume.performance.iops if volume.performance else None,
            throughput=volume.performance.throughput_mbps if volume.performance else None,
            encrypted=True,
            kms_key_id=key.arn,
            final_snapshot=True,
            tags=scope.tags_with(Name=scope.child(volume.name), Node=volume.node, Purpose=volume.purpose),
            opts=scope.stateful_opts(),
        )
        volume_ids[volume.name] = created.id
    backups = _backup_bucket(scope, plan, key, name="backups", partition=partition)
    if plan.replica_region is not None:
        _replicate(scope, plan, backups, source_key=key, account=account, partition=partition, region=region, replica_region=plan.replica_region)
    return StorageResult(key_id=key.arn, volume_ids=volume_ids, backup_bucket_name=backups.bucket.bucket)
