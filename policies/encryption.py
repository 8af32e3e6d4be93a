"""Encryption: data at rest under customer-managed keys that rotate, buckets reachable only over
TLS and never public, and the Swarm overlays that the seed marks encrypted (seed §2.2, §4).

A customer-managed key, not the cloud's default one, is what lets the platform revoke access to
its data and audit every use of it; the offsite backups are the copy that most needs it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, cast

from pulumi_policy import PolicyConfigSchema, PolicyResource, ResourceValidationArgs, Severity, StackValidationArgs

from dpc.tiers import TIERS
from policies.common import attached_to, get, items, mapping, of_type, resource_policy, stack_policy

AWS_BUCKET = "aws:s3/bucket:Bucket"
GCP_BUCKET = "gcp:storage/bucket:Bucket"
AZURE_STORAGE_ACCOUNT = "azure-native:storage:StorageAccount"
_AWS_KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
_AZURE_CUSTOMER_KEY_TYPES = ("EncryptionAtRestWithCustomerKey", "EncryptionAtRestWithPlatformAndCustomerKeys")


def _aws_block_device(label: str, device: Any) -> Iterator[str]:
    if get(device, "encrypted") is not True:
        yield f"{label} is not encrypted: set encrypted to true"
    if not get(device, "kmsKeyId"):
        yield f"{label} is encrypted with the AWS-managed key: set kmsKeyId to the stack's customer-managed key"


def _aws_volume(args: ResourceValidationArgs) -> Iterator[str]:
    yield from _aws_block_device("the volume", args.props)


def _aws_instance(args: ResourceValidationArgs) -> Iterator[str]:
    yield from _aws_block_device("the root disk", get(args.props, "rootBlockDevice"))
    for index, device in enumerate(items(get(args.props, "ebsBlockDevices"))):
        yield from _aws_block_device(f"EBS block device {index}", device)


def _gcp_key(label: str, key_holder: Any) -> Iterator[str]:
    if not get(key_holder, "kmsKeySelfLink"):
        yield f"{label} is encrypted with a Google-managed key: set its kmsKeySelfLink to the stack's Cloud KMS key"


def _gcp_disk(args: ResourceValidationArgs) -> Iterator[str]:
    yield from _gcp_key("the disk", get(args.props, "diskEncryptionKey"))


def _gcp_instance(args: ResourceValidationArgs) -> Iterator[str]:
    yield from _gcp_key("the boot disk", get(args.props, "bootDisk"))
    for index, disk in enumerate(items(get(args.props, "attachedDisks"))):
        yield from _gcp_key(f"attached disk {index}", disk)


def _azure_disk(args: ResourceValidationArgs) -> Iterator[str]:
    encryption = get(args.props, "encryption")
    if get(encryption, "type") not in _AZURE_CUSTOMER_KEY_TYPES or not get(encryption, "diskEncryptionSetId"):
        yield "the disk is encrypted with a platform-managed key: set encryption.type to EncryptionAtRestWithCustomerKey and its diskEncryptionSetId"


def _azure_managed_disk(label: str, disk: Any) -> Iterator[str]:
    if not get(disk, "managedDisk", "diskEncryptionSet", "id"):
        yield f"{label} is encrypted with a platform-managed key: set managedDisk.diskEncryptionSet.id"


def _azure_vm(args: ResourceValidationArgs) -> Iterator[str]:
    storage = get(args.props, "storageProfile")
    yield from _azure_managed_disk("the OS disk", get(storage, "osDisk"))
    for index, disk in enumerate(items(get(storage, "dataDisks"))):
        yield from _azure_managed_disk(f"data disk {index}", disk)


DISKS_ENCRYPTED = resource_policy(
    "disks-encrypted-with-customer-key",
    "Every disk and volume is encrypted with a customer-managed key.",
    severity=Severity.HIGH,
    remediation="Encrypt the volume, root and data disks with the stack's KMS key (AWS kmsKeyId, GCP kmsKeySelfLink, Azure disk encryption set).",
    checks={
        "aws:ebs/volume:Volume": _aws_volume,
        "aws:ec2/instance:Instance": _aws_instance,
        "gcp:compute/disk:Disk": _gcp_disk,
        "gcp:compute/regionDisk:RegionDisk": _gcp_disk,
        "gcp:compute/instance:Instance": _gcp_instance,
        "azure-native:compute:Disk": _azure_disk,
        "azure-native:compute:VirtualMachine": _azure_vm,
    },
)


def _aws_bucket_encrypted(args: StackValidationArgs, bucket: PolicyResource) -> bool:
    for config in attached_to(args, bucket, "bucket", "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"):
        for rule in items(get(config.props, "rules")):
            default = get(rule, "applyServerSideEncryptionByDefault")
            if get(default, "sseAlgorithm") in _AWS_KMS_ALGORITHMS and get(default, "kmsMasterKeyId"):
                return True
    return False


def _buckets_encrypted(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    for bucket in of_type(args, AWS_BUCKET):
        if not _aws_bucket_encrypted(args, bucket):
            yield (f"bucket {bucket.name} has no server-side encryption configuration with aws:kms and the stack's key", bucket.urn)
    for bucket in of_type(args, GCP_BUCKET):
        if not get(bucket.props, "encryption", "defaultKmsKeyName"):
            yield (f"bucket {bucket.name} has no encryption.defaultKmsKeyName", bucket.urn)
    for account in of_type(args, AZURE_STORAGE_ACCOUNT):
        encryption = get(account.props, "encryption")
        if get(encryption, "keySource") != "Microsoft.Keyvault" or not get(encryption, "keyVaultProperties", "keyName"):
            yield (f"storage account {account.name} does not encrypt with a Key Vault key (encryption.keySource Microsoft.Keyvault)", account.urn)


BUCKETS_ENCRYPTED = stack_policy(
    "buckets-encrypted-with-customer-key",
    "Every bucket, the offsite backup repository among them, is encrypted with a customer-managed key.",
    severity=Severity.HIGH,
    remediation="Give the bucket default encryption with the stack's key: an aws:kms BucketServerSideEncryptionConfiguration, "
    "GCS encryption.defaultKmsKeyName, or an Azure storage account with keySource Microsoft.Keyvault.",
    check=_buckets_encrypted,
    clouds=("aws", "gcp", "azure-native"),
)


def _denies_plaintext(policy_document: Any) -> bool:
    """Whether a bucket policy denies every request that does not use TLS."""
    if not isinstance(policy_document, str):
        return False
    statements: Any = json.loads(policy_document).get("Statement", [])
    listed: list[Any] = cast(list[Any], statements) if isinstance(statements, list) else [statements]
    for statement in listed:
        condition = get(statement, "Condition", "Bool", "aws:SecureTransport")
        if get(statement, "Effect") == "Deny" and str(condition).lower() == "false":
            return True
    return False


def _buckets_tls_only(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    for bucket in of_type(args, AWS_BUCKET):
        policies = attached_to(args, bucket, "bucket", "aws:s3/bucketPolicy:BucketPolicy")
        if not any(_denies_plaintext(get(p.props, "policy")) for p in policies):
            yield (f"bucket {bucket.name} has no bucket policy denying requests without TLS (aws:SecureTransport false)", bucket.urn)
    for account in of_type(args, AZURE_STORAGE_ACCOUNT):
        if get(account.props, "enableHttpsTrafficOnly") is False or get(account.props, "minimumTlsVersion") != "TLS1_2":
            yield (f"storage account {account.name} must take HTTPS only (enableHttpsTrafficOnly) with minimumTlsVersion TLS1_2", account.urn)


BUCKETS_TLS_ONLY = stack_policy(
    "buckets-tls-only",
    "Buckets accept requests over TLS only (Cloud Storage always does).",
    severity=Severity.HIGH,
    remediation="Attach a bucket policy that denies s3:* when aws:SecureTransport is false; on Azure set enableHttpsTrafficOnly and minimumTlsVersion TLS1_2.",
    check=_buckets_tls_only,
    clouds=("aws", "azure-native"),
)

_AWS_PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _buckets_private(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    for bucket in of_type(args, AWS_BUCKET):
        blocks = attached_to(args, bucket, "bucket", "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
        if not any(all(get(b.props, flag) is True for flag in _AWS_PUBLIC_ACCESS_FLAGS) for b in blocks):
            yield (f"bucket {bucket.name} has no public access block with all of {', '.join(_AWS_PUBLIC_ACCESS_FLAGS)}", bucket.urn)
    for bucket in of_type(args, GCP_BUCKET):
        if get(bucket.props, "publicAccessPrevention") != "enforced" or get(bucket.props, "uniformBucketLevelAccess") is not True:
            yield (f"bucket {bucket.name} must enforce publicAccessPrevention and uniformBucketLevelAccess", bucket.urn)
    for account in of_type(args, AZURE_STORAGE_ACCOUNT):
        if get(account.props, "allowBlobPublicAccess") is not False:
            yield (f"storage account {account.name} must set allowBlobPublicAccess to false", account.urn)


BUCKETS_PRIVATE = stack_policy(
    "buckets-public-access-blocked",
    "No bucket can be made public.",
    severity=Severity.CRITICAL,
    remediation="Attach a BucketPublicAccessBlock with all four flags on; on GCS enforce public access prevention; on Azure disallow blob public access.",
    check=_buckets_private,
    clouds=("aws", "gcp", "azure-native"),
)


def _seconds(duration: str) -> float:
    return float(duration.removesuffix("s"))


def _aws_key_rotation(args: ResourceValidationArgs) -> Iterator[str]:
    symmetric = get(args.props, "customerMasterKeySpec") in (None, "SYMMETRIC_DEFAULT")
    if symmetric and get(args.props, "enableKeyRotation") is not True:
        yield "automatic rotation is off: set enableKeyRotation to true"


def _gcp_key_rotation(args: ResourceValidationArgs) -> Iterator[str]:
    period = get(args.props, "rotationPeriod")
    limit_days: int = args.get_config()["maxRotationDays"]
    if not isinstance(period, str) or _seconds(period) > limit_days * 86_400:
        yield f"rotationPeriod must be set and at most {limit_days} days"


def _azure_key_rotation(args: ResourceValidationArgs) -> Iterator[str]:
    actions = items(get(args.props, "properties", "rotationPolicy", "lifetimeActions"))
    if not any(str(get(action, "action", "type")).lower() == "rotate" for action in actions):
        yield "the key has no rotation policy with a rotate action"


KEYS_ROTATED = resource_policy(
    "keys-rotated",
    "Customer-managed keys rotate automatically.",
    severity=Severity.MEDIUM,
    remediation="Turn on automatic rotation: AWS enableKeyRotation, GCP rotationPeriod, Azure a rotation policy with a rotate action.",
    checks={
        "aws:kms/key:Key": _aws_key_rotation,
        "gcp:kms/cryptoKey:CryptoKey": _gcp_key_rotation,
        "azure-native:keyvault:Key": _azure_key_rotation,
    },
    config_schema=PolicyConfigSchema({"maxRotationDays": {"type": "integer", "minimum": 1, "default": 365}}),
)


def _mandated_tier(network_name: str) -> str | None:
    """The seed tier a Docker network implements, by its name (`coordinator-net`, or prefixed
    like `prod-coordinator-net`), when the seed marks that tier encrypted.
    """
    for spec in TIERS:
        if spec.encrypted and (network_name == spec.network_name or network_name.endswith(f"-{spec.network_name}")):
            return spec.network_name
    return None


def _overlay_encrypted(args: ResourceValidationArgs) -> Iterable[str]:
    name = get(args.props, "name") or args.name
    tier = _mandated_tier(str(name))
    if tier is None:
        return []
    problems: list[str] = []
    if get(args.props, "driver") != "overlay":
        problems.append(f"{tier} must be a Swarm overlay network (driver overlay)")
    if "encrypted" not in mapping(get(args.props, "options")):
        problems.append(f"{tier} carries traffic the seed requires encrypted: add the option encrypted")
    return problems


OVERLAYS_ENCRYPTED = resource_policy(
    "overlay-networks-encrypted",
    "The Swarm overlay networks that seed §2.2 marks encrypted (coordinator-net, data-net) are IPsec-encrypted.",
    severity=Severity.HIGH,
    remediation='Create the network with driver "overlay" and options {"encrypted": ""}.',
    checks={"docker:index/network:Network": _overlay_encrypted},
)

POLICIES = [DISKS_ENCRYPTED, BUCKETS_ENCRYPTED, BUCKETS_TLS_ONLY, BUCKETS_PRIVATE, KEYS_ROTATED, OVERLAYS_ENCRYPTED]
