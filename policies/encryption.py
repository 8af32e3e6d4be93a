"""Encryption: data at rest under customer-managed keys that rotate, buckets reachable only over
TLS and never public, and the Swarm overlays that the design marks encrypted (design §2.2, §3.5).

A customer-managed key, not the cloud's default one, is what lets the platform revoke access to
its data and audit every use of it; the offsite backups are the copy that most needs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyConfigSchema, PolicyResource, ResourceValidationArgs, Severity, StackValidationArgs

from dpc.tiers import TIERS
from policies.common import attached_to, depends_through, get, is_sequence, items, judge_each, mapping, of_type, resource_policy, stack_policy
from policies.identity import UNKNOWN, known_items, length, peek, policy_statements

AWS_BUCKET = "aws:s3/bucket:Bucket"
GCP_BUCKET = "gcp:storage/bucket:Bucket"
AZURE_STORAGE_ACCOUNT = "azure-native:storage:StorageAccount"
_AWS_KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
_AZURE_CUSTOMER_KEY_TYPES = ("EncryptionAtRestWithCustomerKey", "EncryptionAtRestWithPlatformAndCustomerKeys")
_AZURE_TLS_VERSIONS = ("TLS1_2", "TLS1_3")
"""The minimum TLS versions Azure Storage accepts that are still current (pulumi-azure-native's
MinimumTlsVersion: TLS1_0, TLS1_1, TLS1_2, TLS1_3)."""


def _aws_block_device(label: str, device: Any) -> Iterator[str]:
    if peek(device, "encrypted") is not True:
        yield f"{label} is not encrypted: set encrypted to true"
    if not peek(device, "kmsKeyId"):
        yield f"{label} is encrypted with the AWS-managed key: set kmsKeyId to the stack's customer-managed key"


def _aws_volume(args: ResourceValidationArgs) -> Iterator[str]:
    yield from _aws_block_device("the volume", args.props)


def _aws_instance(args: ResourceValidationArgs) -> Iterator[str]:
    yield from _aws_block_device("the root disk", get(args.props, "rootBlockDevice"))
    for index, device in enumerate(items(get(args.props, "ebsBlockDevices"))):
        yield from _aws_block_device(f"EBS block device {index}", device)


def _gcp_key(label: str, key_holder: Any) -> Iterator[str]:
    if not peek(key_holder, "kmsKeySelfLink"):
        yield f"{label} is encrypted with a Google-managed key: set its kmsKeySelfLink to the stack's Cloud KMS key"


def _gcp_disk(args: ResourceValidationArgs) -> Iterator[str]:
    yield from _gcp_key("the disk", get(args.props, "diskEncryptionKey"))


def _gcp_region_disk(args: ResourceValidationArgs) -> Iterator[str]:
    """A regional disk names its key `kmsKeyName`, unlike a zonal disk (pulumi-gcp's RegionDisk)."""
    if not peek(args.props, "diskEncryptionKey", "kmsKeyName"):
        yield "the regional disk is encrypted with a Google-managed key: set diskEncryptionKey.kmsKeyName to the stack's Cloud KMS key"


def _gcp_instance(args: ResourceValidationArgs) -> Iterator[str]:
    yield from _gcp_key("the boot disk", get(args.props, "bootDisk"))
    for index, disk in enumerate(items(get(args.props, "attachedDisks"))):
        yield from _gcp_key(f"attached disk {index}", disk)


def _azure_disk(args: ResourceValidationArgs) -> Iterator[str]:
    encryption = get(args.props, "encryption")
    if peek(encryption, "type") not in _AZURE_CUSTOMER_KEY_TYPES or not peek(encryption, "diskEncryptionSetId"):
        yield "the disk is encrypted with a platform-managed key: set encryption.type to EncryptionAtRestWithCustomerKey and its diskEncryptionSetId"


def _azure_encryption_set(args: ResourceValidationArgs) -> Iterator[str]:
    """A disk encryption set encrypts with the customer key, and follows its rotation: without
    `rotationToLatestKeyVersionEnabled` the disks stay on the version they were made with, and
    rotating the key protects nothing already written.
    """
    if get(args.props, "encryptionType") not in _AZURE_CUSTOMER_KEY_TYPES:
        yield "the disk encryption set does not encrypt with the customer key: set encryptionType EncryptionAtRestWithCustomerKey"
    if get(args.props, "rotationToLatestKeyVersionEnabled") is not True:
        yield "the disk encryption set stays on one key version: set rotationToLatestKeyVersionEnabled to true"


def _azure_managed_disk(label: str, disk: Any) -> Iterator[str]:
    if not peek(disk, "managedDisk", "diskEncryptionSet", "id"):
        yield f"{label} is encrypted with a platform-managed key: set managedDisk.diskEncryptionSet.id"


def _azure_vm(args: ResourceValidationArgs) -> Iterator[str]:
    """The disks a machine creates with itself; a managed disk it attaches (`createOption` Attach)
    keeps the encryption it was made with, judged as that Disk.
    """
    storage = get(args.props, "storageProfile")
    yield from _azure_managed_disk("the OS disk", get(storage, "osDisk"))
    for index, disk in enumerate(items(get(storage, "dataDisks"))):
        if str(get(disk, "createOption")).lower() != "attach":
            yield from _azure_managed_disk(f"data disk {index}", disk)


DISKS_ENCRYPTED = resource_policy(
    "disks-encrypted-with-customer-key",
    "Every disk and volume is encrypted with a customer-managed key.",
    severity=Severity.HIGH,
    remediation="Encrypt the volume, root and data disks with the stack's KMS key (AWS kmsKeyId, GCP kmsKeySelfLink, Azure a disk encryption set "
    "of the customer key that follows its rotation).",
    checks={
        "aws:ebs/volume:Volume": _aws_volume,
        "aws:ec2/instance:Instance": _aws_instance,
        "gcp:compute/disk:Disk": _gcp_disk,
        "gcp:compute/regionDisk:RegionDisk": _gcp_region_disk,
        "gcp:compute/instance:Instance": _gcp_instance,
        "azure-native:compute:Disk": _azure_disk,
        "azure-native:compute:VirtualMachine": _azure_vm,
        "azure-native:compute:DiskEncryptionSet": _azure_encryption_set,
    },
)


def _aws_bucket_encrypted(args: StackValidationArgs, bucket: PolicyResource) -> bool:
    for config in attached_to(args, bucket, "bucket", "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"):
        for rule in items(get(config.props, "rules")):
            default = get(rule, "applyServerSideEncryptionByDefault")
            if get(default, "sseAlgorithm") in _AWS_KMS_ALGORITHMS and peek(default, "kmsMasterKeyId"):
                return True
    return False


def _bucket_encryption_problems(args: StackValidationArgs, bucket: PolicyResource) -> Iterator[str]:
    match bucket.resource_type:
        case "aws:s3/bucket:Bucket":
            if not _aws_bucket_encrypted(args, bucket):
                yield f"bucket {bucket.name} has no server-side encryption configuration with aws:kms and the stack's key"
        case "gcp:storage/bucket:Bucket":
            if not peek(bucket.props, "encryption", "defaultKmsKeyName"):
                yield f"bucket {bucket.name} has no encryption.defaultKmsKeyName"
        case _:
            encryption = get(bucket.props, "encryption")
            if get(encryption, "keySource") != "Microsoft.Keyvault" or not peek(encryption, "keyVaultProperties", "keyName"):
                yield f"storage account {bucket.name} does not encrypt with a Key Vault key (encryption.keySource Microsoft.Keyvault)"


def _buckets_encrypted(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    yield from judge_each(of_type(args, AWS_BUCKET, GCP_BUCKET, AZURE_STORAGE_ACCOUNT), lambda bucket: _bucket_encryption_problems(args, bucket))


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
    for statement in policy_statements(policy_document):
        condition = get(statement, "Condition", "Bool", "aws:SecureTransport")
        if get(statement, "Effect") == "Deny" and str(condition).lower() == "false":
            return True
    return False


def _tls_problems(args: StackValidationArgs, bucket: PolicyResource) -> Iterator[str]:
    if bucket.resource_type == AWS_BUCKET:
        policies = attached_to(args, bucket, "bucket", "aws:s3/bucketPolicy:BucketPolicy")
        if not any(_denies_plaintext(get(p.props, "policy")) for p in policies):
            yield f"bucket {bucket.name} has no bucket policy denying requests without TLS (aws:SecureTransport false)"
    elif get(bucket.props, "enableHttpsTrafficOnly") is False or get(bucket.props, "minimumTlsVersion") not in _AZURE_TLS_VERSIONS:
        yield f"storage account {bucket.name} must take HTTPS only (enableHttpsTrafficOnly) with minimumTlsVersion TLS1_2 or TLS1_3"


def _buckets_tls_only(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    yield from judge_each(of_type(args, AWS_BUCKET, AZURE_STORAGE_ACCOUNT), lambda bucket: _tls_problems(args, bucket))


BUCKETS_TLS_ONLY = stack_policy(
    "buckets-tls-only",
    "Buckets accept requests over TLS only (Cloud Storage always does).",
    severity=Severity.HIGH,
    remediation="Attach a bucket policy that denies s3:* when aws:SecureTransport is false; "
    "on Azure set enableHttpsTrafficOnly and minimumTlsVersion TLS1_2 or TLS1_3.",
    check=_buckets_tls_only,
    clouds=("aws", "azure-native"),
)

_AWS_PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _public_problems(args: StackValidationArgs, bucket: PolicyResource) -> Iterator[str]:
    match bucket.resource_type:
        case "aws:s3/bucket:Bucket":
            blocks = attached_to(args, bucket, "bucket", "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
            if not any(all(get(b.props, flag) is True for flag in _AWS_PUBLIC_ACCESS_FLAGS) for b in blocks):
                yield f"bucket {bucket.name} has no public access block with all of {', '.join(_AWS_PUBLIC_ACCESS_FLAGS)}"
        case "gcp:storage/bucket:Bucket":
            if get(bucket.props, "publicAccessPrevention") != "enforced" or get(bucket.props, "uniformBucketLevelAccess") is not True:
                yield f"bucket {bucket.name} must enforce publicAccessPrevention and uniformBucketLevelAccess"
        case _:
            if get(bucket.props, "allowBlobPublicAccess") is not False:
                yield f"storage account {bucket.name} must set allowBlobPublicAccess to false"


def _buckets_private(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    yield from judge_each(of_type(args, AWS_BUCKET, GCP_BUCKET, AZURE_STORAGE_ACCOUNT), lambda bucket: _public_problems(args, bucket))


BUCKETS_PRIVATE = stack_policy(
    "buckets-public-access-blocked",
    "No bucket can be made public.",
    severity=Severity.CRITICAL,
    remediation="Attach a BucketPublicAccessBlock with all four flags on; on GCS enforce public access prevention; on Azure disallow blob public access.",
    check=_buckets_private,
    clouds=("aws", "gcp", "azure-native"),
)


MAX_ROTATION_DAYS = 90
"""The longest a Cloud KMS or Key Vault key may go between versions (the GCP and Azure stacks rotate
every 90 days); AWS KMS rotates yearly by itself when rotation is on, and is judged by
`enableKeyRotation` alone."""


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


_ISO_DURATION = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?")
_LONGEST_DAYS = (366, 31, 7, 1)
"""A year's and a month's days at their longest: a rotation period in months or years is judged
by the most days it can mean, so that `P3M` (up to 92 days) is not taken for 90."""


def iso_days(duration: Any) -> int | None:
    """The most days an ISO 8601 duration of Key Vault's (`P90D`, `P3M`, `P1Y`) can mean; None for
    anything else (a duration with hours, a missing value).
    """
    match = _ISO_DURATION.fullmatch(str(duration)) if isinstance(duration, str) and duration != "P" else None
    if match is None:
        return None
    return sum(int(n or 0) * days for n, days in zip(match.groups(), _LONGEST_DAYS, strict=True))


def azure_rotation_days(policy: Any) -> int | None:
    """How many days at most an Azure key's rotation policy lets a version live: the soonest of its
    rotate actions, each after `timeAfterCreate`, or `timeBeforeExpiry` before the versions'
    `expiryTime`; None when it has no rotate action with a period (notify actions rotate nothing).
    """
    expiry = iso_days(peek(policy, "attributes", "expiryTime"))
    periods: list[int] = []
    for action in known_items(peek(policy, "lifetimeActions")):
        if str(peek(action, "action", "type")).lower() != "rotate":
            continue
        after = iso_days(peek(action, "trigger", "timeAfterCreate"))
        before = iso_days(peek(action, "trigger", "timeBeforeExpiry"))
        if after is not None:
            periods.append(after)
        elif before is not None and expiry is not None:
            periods.append(expiry - before)
    return min(periods, default=None)


def _azure_key_rotation(args: ResourceValidationArgs) -> Iterator[str]:
    limit_days = int(args.get_config()["maxRotationDays"])  # the engine sends config numbers as floats
    days = azure_rotation_days(get(args.props, "properties", "rotationPolicy"))
    if days is None or days > limit_days:
        yield (f"the key's rotation policy must rotate it at most {limit_days} days after each version is made "
               f"(a rotate action with trigger.timeAfterCreate such as P90D){'' if days is None else f': it rotates after up to {days} days'}")


def _azure_vault(args: ResourceValidationArgs) -> Iterator[str]:
    properties = get(args.props, "properties")
    if get(properties, "enablePurgeProtection") is not True:
        yield "the vault can be purged with its keys before the retention ends: set properties.enablePurgeProtection to true"
    if get(properties, "enableSoftDelete") is False:
        yield "a deleted key or secret is gone at once: leave properties.enableSoftDelete on"
    if get(properties, "enableRbacAuthorization") is not True:
        yield "the vault is governed by access policies, which grant a whole vault's keys or secrets at once: set properties.enableRbacAuthorization to true"
    if items(get(properties, "accessPolicies")):
        yield "the vault lists access policies: grant through role assignments on each key or secret instead"


AZURE_VAULT_PROTECTED = resource_policy(
    "azure-key-vault-protected",
    "The stack's Key Vault keeps what is deleted (soft delete) and cannot be purged before its retention ends (purge protection): "
    "its key is what every disk, the offsite account and the registry are encrypted with; access is by Azure RBAC role assignments "
    "on each key or secret, never vault-wide access policies.",
    severity=Severity.HIGH,
    remediation="Create the vault with properties enable_purge_protection=True, enable_soft_delete=True, enable_rbac_authorization=True "
    "and no access_policies; grant each identity its role on the one key or secret it needs.",
    checks={"azure-native:keyvault:Vault": _azure_vault},
)


KEYS_ROTATED = resource_policy(
    "keys-rotated",
    "Customer-managed keys rotate automatically.",
    severity=Severity.MEDIUM,
    remediation="Turn on automatic rotation: AWS enableKeyRotation, GCP rotationPeriod (at most maxRotationDays, 90 by default), "
    "Azure a rotation policy with a rotate action at most maxRotationDays after creation.",
    checks={
        "aws:kms/key:Key": _aws_key_rotation,
        "gcp:kms/cryptoKey:CryptoKey": _gcp_key_rotation,
        "azure-native:keyvault:Key": _azure_key_rotation,
    },
    config_schema=PolicyConfigSchema({"maxRotationDays": {"type": "integer", "minimum": 1, "default": MAX_ROTATION_DAYS}}),
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
    "The Swarm overlay networks that design §2.2 marks encrypted (coordinator-net, data-net) are IPsec-encrypted.",
    severity=Severity.HIGH,
    remediation='Create the network with driver "overlay" and options {"encrypted": ""}.',
    checks={"docker:index/network:Network": _overlay_encrypted},
)

AWS_KEY = "aws:kms/key:Key"
GCP_KEY = "gcp:kms/cryptoKey:CryptoKey"
AZURE_KEY = "azure-native:keyvault:Key"
AZURE_DISK_ENCRYPTION_SET = "azure-native:compute:DiskEncryptionSet"
_SECRET_SOURCES = ("random:index/randomPassword:RandomPassword", "tls:index/privateKey:PrivateKey", "aws:ssm/parameter:Parameter")
"""What a plain (String) SSM parameter's value must not be computed from."""


def _rotating(key: PolicyResource) -> bool:
    """Whether a customer key of the stack rotates by itself (the same test as keys-rotated)."""
    match key.resource_type:
        case "aws:kms/key:Key":
            symmetric = peek(key.props, "customerMasterKeySpec") in (None, "SYMMETRIC_DEFAULT")
            return symmetric and peek(key.props, "enableKeyRotation") is True
        case "gcp:kms/cryptoKey:CryptoKey":
            period = peek(key.props, "rotationPeriod")
            return isinstance(period, str) and _seconds(period) <= MAX_ROTATION_DAYS * 86_400
        case "azure-native:keyvault:Key":
            days = azure_rotation_days(peek(key.props, "properties", "rotationPolicy"))
            return days is not None and days <= MAX_ROTATION_DAYS
        case _:
            return False


def _stack_keys(resource: PolicyResource, prop: str) -> list[PolicyResource]:
    """The stack's customer keys that `resource`'s property `prop` was computed from; for an Azure
    disk encryption set, the Key Vault key the set itself uses.
    """
    found = depends_through(resource, prop, AWS_KEY, GCP_KEY, AZURE_KEY)
    for encryption_set in depends_through(resource, prop, AZURE_DISK_ENCRYPTION_SET):
        found.extend(depends_through(encryption_set, "activeKey", AZURE_KEY))
    return found


def _cloud_managed(value: Any) -> bool:
    """A key reference that is the cloud's own key, whoever's dependency it carries (`alias/aws/ebs`)."""
    return value is not UNKNOWN and isinstance(value, str) and ("alias/aws/" in value or value.startswith("aws/"))


def _key_accounts(keys: list[PolicyResource]) -> set[str]:
    """The AWS accounts the stack's keys belong to: from their ARN where the engine hands outputs
    (after `up`), else from the account root their key policy lets administer them.
    """
    accounts: set[str] = set()
    for key in keys:
        arn = peek(key.props, "arn")
        if isinstance(arn, str) and arn.startswith("arn:"):
            accounts.add(arn.split(":")[4])
        for statement in policy_statements(peek(key.props, "policy")):
            accounts.update(p.split(":")[4] for p in _principal_arns(statement) if p.endswith(":root"))
    return accounts


def _principal_arns(statement: Any) -> list[str]:
    principal = get(statement, "Principal", "AWS")
    return [str(p) for p in (principal if is_sequence(principal) else [principal]) if str(p).startswith("arn:")]


def _foreign_account(reference: Any, keys: list[PolicyResource]) -> str | None:
    """The account of a KMS key ARN that belongs to none of the stack keys' accounts, if it names one."""
    if not isinstance(reference, str) or not reference.startswith("arn:aws:kms:") or reference.count(":") < 5:
        return None
    account = reference.split(":")[4]
    accounts = _key_accounts(keys)
    return account if accounts and account not in accounts else None


@dataclass(frozen=True)
class KeyField:
    """Where one type names the key its data is encrypted with: the top-level property whose
    dependencies must lead to the stack's rotating key, and the paths of the key reference inside it.
    """

    token: str
    prop: str
    what: str
    references: Callable[[PolicyResource], list[Any]]
    applies: Callable[[PolicyResource], bool] = lambda _: True


def _at(*path: str | int) -> Callable[[PolicyResource], list[Any]]:
    return lambda resource: [peek(resource.props, *path)]


def _each(prop: str, *path: str | int) -> Callable[[PolicyResource], list[Any]]:
    return lambda resource: [peek(item, *path) for item in known_items(peek(resource.props, prop))]


def _secret_keys(resource: PolicyResource) -> list[Any]:
    """The keys a Secret Manager secret's replicas are encrypted with: each user-managed replica's,
    or the automatic replication's one; a replica under Google's key names None.
    """
    replicas = known_items(peek(resource.props, "replication", "userManaged", "replicas"))
    if replicas:
        return [peek(replica, "customerManagedEncryption", "kmsKeyName") for replica in replicas]
    return [peek(resource.props, "replication", "auto", "customerManagedEncryption", "kmsKeyName")]


def _has(prop: str) -> Callable[[PolicyResource], bool]:
    return lambda resource: length(peek(resource.props, prop)) > 0 or isinstance(peek(resource.props, prop), Mapping)


def _secure_parameter(resource: PolicyResource) -> bool:
    return peek(resource.props, "type") != "String"


KEY_FIELDS = (
    KeyField("aws:ebs/volume:Volume", "kmsKeyId", "the volume", _at("kmsKeyId")),
    KeyField("aws:ec2/instance:Instance", "rootBlockDevice", "the root disk", _at("rootBlockDevice", "kmsKeyId")),
    KeyField("aws:ec2/instance:Instance", "ebsBlockDevices", "the EBS block devices", _each("ebsBlockDevices", "kmsKeyId"), _has("ebsBlockDevices")),
    KeyField("aws:ec2/launchTemplate:LaunchTemplate", "blockDeviceMappings", "the template's block devices",
             _each("blockDeviceMappings", "ebs", "kmsKeyId"), _has("blockDeviceMappings")),
    KeyField("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "rules", "the bucket's default encryption",
             _each("rules", "applyServerSideEncryptionByDefault", "kmsMasterKeyId")),
    KeyField("aws:s3/bucketReplicationConfig:BucketReplicationConfig", "rules", "the replica's encryption",
             _each("rules", "destination", "encryptionConfiguration", "replicaKmsKeyId")),
    KeyField("aws:ssm/parameter:Parameter", "keyId", "the SecureString parameter", _at("keyId"), _secure_parameter),
    KeyField("aws:cloudwatch/logGroup:LogGroup", "kmsKeyId", "the log group", _at("kmsKeyId")),
    KeyField("aws:ecr/repository:Repository", "encryptionConfigurations", "the registry", _each("encryptionConfigurations", "kmsKey")),
    KeyField("gcp:compute/disk:Disk", "diskEncryptionKey", "the disk", _at("diskEncryptionKey", "kmsKeySelfLink")),
    KeyField("gcp:compute/regionDisk:RegionDisk", "diskEncryptionKey", "the regional disk", _at("diskEncryptionKey", "kmsKeyName")),
    KeyField("gcp:compute/instance:Instance", "bootDisk", "the boot disk", _at("bootDisk", "kmsKeySelfLink")),
    KeyField("gcp:compute/instance:Instance", "attachedDisks", "the attached disks", _each("attachedDisks", "kmsKeySelfLink"), _has("attachedDisks")),
    KeyField("gcp:storage/bucket:Bucket", "encryption", "the bucket", _at("encryption", "defaultKmsKeyName")),
    KeyField("azure-native:compute:Disk", "encryption", "the disk", _at("encryption", "diskEncryptionSetId")),
    KeyField("azure-native:compute:VirtualMachine", "storageProfile", "the machine's disks",
             _at("storageProfile", "osDisk", "managedDisk", "diskEncryptionSet", "id")),
    KeyField("azure-native:storage:StorageAccount", "encryption", "the storage account", _at("encryption", "keyVaultProperties", "keyName")),
    KeyField("gcp:artifactregistry/repository:Repository", "kmsKeyName", "the registry", _at("kmsKeyName")),
    KeyField("gcp:secretmanager/secret:Secret", "replication", "the secret's replicas", _secret_keys),
    KeyField("azure-native:containerregistry:Registry", "encryption", "the registry", _at("encryption", "keyVaultProperties", "keyIdentifier")),
)
"""Every type that keeps data at rest, and where it names its key."""


_FIELDS_BY_TYPE: dict[str, list[KeyField]] = {}
for _field in KEY_FIELDS:
    _FIELDS_BY_TYPE.setdefault(_field.token, []).append(_field)


def _stack_key_problems(resource: PolicyResource) -> Iterator[str]:
    """Each of the resource's key fields: computed from a rotating key of this stack, and naming no
    cloud-managed key.
    """
    for field in _FIELDS_BY_TYPE.get(resource.resource_type, []):
        if not field.applies(resource):
            continue
        keys = _stack_keys(resource, field.prop)
        references = field.references(resource)
        foreign = {account for account in (_foreign_account(r, keys) for r in references) if account}
        if any(_cloud_managed(reference) for reference in references):
            yield f"{field.what} of {resource.name} names the cloud's own key, not the stack's"
        elif any(reference is None for reference in references):
            yield f"{field.what} of {resource.name} names no key: the cloud's own key encrypts it"
        elif foreign:
            yield f"{field.what} of {resource.name} names a key of account {', '.join(sorted(foreign))}, not one of this stack's"
        elif not keys:
            yield (f"{field.what} of {resource.name} is not encrypted with a key of this stack (its {field.prop} is computed from none: "
                   "a literal ARN, an alias, another account's key)")
        elif not all(_rotating(key) for key in keys):
            yield f"{field.what} of {resource.name} is encrypted with {', '.join(k.name for k in keys if not _rotating(k))}, a key that does not rotate"


def _stack_key_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    yield from judge_each((r for r in args.resources if r.resource_type in _FIELDS_BY_TYPE), _stack_key_problems)
    yield from judge_each(of_type(args, "aws:ssm/parameter:Parameter"), _plain_parameter)


def _plain_parameter(parameter: PolicyResource) -> Iterator[str]:
    """SSM parameters are SecureStrings; a String is accepted only for public data, written as
    `insecureValue` (the image list: references by digest) and computed from no secret.
    """
    kind = peek(parameter.props, "type")
    if _secure_parameter(parameter):
        if kind != "SecureString":
            yield f"parameter {parameter.name} is of type {kind}, not SecureString"
        return
    secret_sources = [d.name for deps in parameter.property_dependencies.values() for d in deps if d.resource_type in _SECRET_SOURCES]
    if peek(parameter.props, "value") is not None or secret_sources:
        yield (f"parameter {parameter.name} is a plain String but holds {', '.join(secret_sources) or 'a value marked secret'}: "
               "make it a SecureString under the stack's key")


ENCRYPTED_WITH_STACK_KEY = stack_policy(
    "encrypted-with-stack-key",
    "Disks, buckets, parameters, log groups and registries are encrypted with this stack's own rotating customer key, found through "
    "the property the key is named in (not an AWS-managed alias, a literal ARN or another account's key); SSM parameters are SecureStrings.",
    severity=Severity.HIGH,
    remediation="Name the stack's KMS key resource (its arn output) in the key property (kmsKeyId, kmsMasterKeyId, keyId, kmsKey; "
    "GCP kmsKeySelfLink/kmsKeyName; Azure a disk encryption set or Key Vault key of the stack) and keep its rotation on.",
    check=_stack_key_violations,
    clouds=("aws", "gcp", "azure-native"),
)

def _gcp_secret_replication(args: ResourceValidationArgs) -> Iterator[str]:
    replicas = items(get(args.props, "replication", "userManaged", "replicas"))
    if get(args.props, "replication", "auto") is not None or not replicas:
        yield "the secret is replicated automatically, wherever Google chooses: give it user-managed replicas in the stack's region"
    for index, replica in enumerate(replicas):
        if not peek(replica, "customerManagedEncryption", "kmsKeyName"):  # unknown at preview: the key still to be made
            yield f"replica {index} ({get(replica, 'location')}) is encrypted with a Google-managed key: set customerManagedEncryption.kmsKeyName"


GCP_SECRETS_REPLICATED_UNDER_CUSTOMER_KEY = resource_policy(
    "gcp-secrets-user-managed-under-customer-key",
    "Secret Manager secrets (join tokens, host keys, the image list) are replicated only where the stack says (user-managed replicas, "
    "never automatic replication) and each replica is encrypted with a customer-managed key.",
    severity=Severity.HIGH,
    remediation='Create the secret with replication={"user_managed": {"replicas": [{"location": <region>, '
    '"customer_managed_encryption": {"kms_key_name": <the stack key>}}]}}.',
    checks={"gcp:secretmanager/secret:Secret": _gcp_secret_replication},
)

POLICIES = [GCP_SECRETS_REPLICATED_UNDER_CUSTOMER_KEY, AZURE_VAULT_PROTECTED,
            ENCRYPTED_WITH_STACK_KEY, DISKS_ENCRYPTED, BUCKETS_ENCRYPTED, BUCKETS_TLS_ONLY, BUCKETS_PRIVATE, KEYS_ROTATED, OVERLAYS_ENCRYPTED]
