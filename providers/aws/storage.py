"""AWS storage: a customer-managed KMS key with rotation, gp3 volumes encrypted with it, and the
offsite backup bucket: SSE-KMS, versioned, public access blocked, TLS only, with the seed's
lifecycle (Standard-IA, then Glacier, then expiry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.base import Scope
from components.storage import StoragePlan, StorageResult


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
    """A bucket and its versioning, which replication must wait for on both sides."""

    bucket: aws.s3.Bucket
    versioning: aws.s3.BucketVersioning


def _backup_bucket(scope: Scope, plan: StoragePlan, key: aws.kms.Key, *, name: str, provider: aws.Provider | None = None) -> BucketParts:
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
        policy=bucket.arn.apply(_tls_only_policy),
        opts=scope.opts(depends_on=[block], **on),
    )
    lifecycle = plan.lifecycle
    aws.s3.BucketLifecycleConfiguration(
        scope.child(f"{name}-lifecycle"),
        bucket=bucket.id,
        rules=[{
            "id": "offsite-retention",
            "status": "Enabled",
            "filter": {"prefix": ""},
            "transitions": [
                {"days": lifecycle.infrequent_access_after_days, "storage_class": "STANDARD_IA"},
                {"days": lifecycle.archive_after_days, "storage_class": "GLACIER"},
            ],
            "expiration": {"days": lifecycle.expire_after_days},
            "noncurrent_version_expiration": {"noncurrent_days": lifecycle.infrequent_access_after_days},
            "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
        }],
        opts=scope.opts(**on),
    )
    return BucketParts(bucket, versioning)


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
    region: pulumi.Output[str],
    replica_region: str,
) -> None:
    """A copy of every backup in the replica region (seed §4.1: geo-replicated), in a bucket like the
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
    replica = _backup_bucket(scope, plan, replica_key, name="backups-replica", provider=provider)
    role = aws.iam.Role(
        scope.child("replication"),
        assume_role_policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sts:AssumeRole"}],
        }),
        description=f"S3 copies {scope.name}'s offsite backups to {replica_region}",
        tags=scope.tags_with(Name=scope.child("replication")),
        opts=scope.opts(),
    )
    aws.iam.RolePolicy(
        scope.child("replication"),
        role=role.id,
        policy=pulumi.Output.all(source.bucket.arn, replica.bucket.arn, source_key.arn, replica_key.arn, region).apply(
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
                "bucket": replica.bucket.arn,
                "storage_class": "STANDARD_IA",
                "encryption_configuration": {"replica_kms_key_id": replica_key.arn},
            },
        }],
        opts=scope.opts(depends_on=[source.versioning, replica.versioning]),
    )


def build_storage(scope: Scope, plan: StoragePlan) -> StorageResult:
    """Creates the key, the volumes, the backup bucket and, where asked, its copy in another region."""
    invoke = pulumi.InvokeOutputOptions(parent=scope.component)
    region = aws.get_region_output(opts=invoke).region
    account = pulumi.Output.all(aws.get_caller_identity_output(opts=invoke).account_id, aws.get_partition_output(opts=invoke).partition)
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
            iops=volume.iops,
            throughput=volume.throughput_mbps,
            encrypted=True,
            kms_key_id=key.arn,
            final_snapshot=True,
            tags=scope.tags_with(Name=scope.child(volume.name), Node=volume.node, Purpose=volume.purpose),
            opts=scope.stateful_opts(),
        )
        volume_ids[volume.name] = created.id
    backups = _backup_bucket(scope, plan, key, name="backups")
    if plan.replica_region is not None:
        _replicate(scope, plan, backups, source_key=key, account=account, region=region, replica_region=plan.replica_region)
    return StorageResult(key_arn=key.arn, volume_ids=volume_ids, backup_bucket_name=backups.bucket.bucket, backup_bucket_arn=backups.bucket.arn)
