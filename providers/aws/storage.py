"""AWS storage: a customer-managed KMS key with rotation, gp3 volumes encrypted with it, and the
offsite backup bucket: SSE-KMS, versioned, public access blocked, TLS only, with the seed's
lifecycle (Standard-IA, then Glacier, then expiry).
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from components.base import Scope
from components.storage import StoragePlan, StorageResult


def _key_policy(account: str, partition: str, region: str) -> str:
    root = f"arn:{partition}:iam::{account}:root"
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministersTheKeyThroughIam",
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchLogsEncryptsThisStacksLogs",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                "Resource": "*",
                "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:{partition}:logs:{region}:{account}:log-group:*"}},
            },
        ],
    }, sort_keys=True)


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


def _backup_bucket(scope: Scope, plan: StoragePlan, key: aws.kms.Key) -> aws.s3.Bucket:
    bucket = aws.s3.Bucket(
        scope.child("backups"),
        force_destroy=False,
        tags=scope.tags_with(Name=scope.child("backups"), Purpose="offsite-backups"),
        opts=scope.stateful_opts(),
    )
    aws.s3.BucketOwnershipControls(
        scope.child("backups-ownership"),
        bucket=bucket.id,
        rule={"object_ownership": "BucketOwnerEnforced"},
        opts=scope.opts(),
    )
    block = aws.s3.BucketPublicAccessBlock(
        scope.child("backups-public-access"),
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=scope.opts(),
    )
    aws.s3.BucketVersioning(
        scope.child("backups-versioning"),
        bucket=bucket.id,
        versioning_configuration={"status": "Enabled"},
        opts=scope.opts(),
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        scope.child("backups-encryption"),
        bucket=bucket.id,
        rules=[{
            "apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms", "kms_master_key_id": key.arn},
            "bucket_key_enabled": True,
        }],
        opts=scope.opts(),
    )
    aws.s3.BucketPolicy(
        scope.child("backups-tls-only"),
        bucket=bucket.id,
        policy=bucket.arn.apply(_tls_only_policy),
        opts=scope.opts(depends_on=[block]),
    )
    lifecycle = plan.lifecycle
    aws.s3.BucketLifecycleConfiguration(
        scope.child("backups-lifecycle"),
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
        opts=scope.opts(),
    )
    return bucket


def build_storage(scope: Scope, plan: StoragePlan) -> StorageResult:
    """Creates the key, the volumes and the backup bucket."""
    invoke = pulumi.InvokeOutputOptions(parent=scope.component)
    identity = aws.get_caller_identity_output(opts=invoke)
    partition = aws.get_partition_output(opts=invoke)
    region = aws.get_region_output(opts=invoke)
    key = aws.kms.Key(
        scope.child("key"),
        description=f"Encrypts the volumes, backups, logs and bootstrap secrets of {scope.name}",
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=pulumi.Output.all(identity.account_id, partition.partition, region.region).apply(lambda a: _key_policy(*a)),
        tags=scope.tags_with(Name=scope.child("key")),
        opts=scope.stateful_opts(),
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
    bucket = _backup_bucket(scope, plan, key)
    return StorageResult(key_arn=key.arn, volume_ids=volume_ids, backup_bucket_name=bucket.bucket, backup_bucket_arn=bucket.arn)
