"""Lifecycle: the resources that hold data or the keys to it (volumes, disks, buckets, keys) are
protected, so that deleting them takes an explicit `pulumi state unprotect` rather than a mistaken
change. The program protects them in prod; the per-environment configs enforce this rule in prod
and switch it off where stacks are meant to be torn down.
"""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import PolicyConfigSchema, PolicyResource, ResourceValidationArgs, Severity, StackValidationArgs

from policies.common import attached_to, get, items, judge_each, of_type, resource_policy, stack_policy
from policies.identity import is_prod

STATEFUL_TYPES = (
    "aws:ebs/volume:Volume",
    "aws:s3/bucket:Bucket",
    "aws:kms/key:Key",
    "gcp:compute/disk:Disk",
    "gcp:compute/regionDisk:RegionDisk",
    "gcp:storage/bucket:Bucket",
    "gcp:kms/keyRing:KeyRing",
    "gcp:kms/cryptoKey:CryptoKey",
    "azure-native:compute:Disk",
    "azure-native:storage:StorageAccount",
    "azure-native:keyvault:Vault",
    "azure-native:keyvault:Key",
    "azure-native:compute:DiskEncryptionSet",
    "azure-native:storage:BlobContainer",
    "azure-native:containerregistry:Registry",
    "azure-native:resources:ResourceGroup",
)
"""What holds data or a key to it. On Azure also what makes data unreadable when it goes: a disk
encryption set (its disks cannot be read without it), the offsite container, the registry (the
images every node runs) and the stack's resource group (deleting it deletes everything in it)."""


def _protected(args: ResourceValidationArgs) -> Iterator[str]:
    if not args.opts.protect:
        yield "it holds data or a key to data and is not protected: give it the resource option protect=True"


STATEFUL_PROTECTED = resource_policy(
    "stateful-resources-protected",
    "Volumes, disks, buckets and keys are protected from deletion.",
    severity=Severity.HIGH,
    remediation="Create the resource with ResourceOptions(protect=True) (the program does so through Scope.stateful_opts in prod).",
    checks=dict.fromkeys(STATEFUL_TYPES, _protected),
)

def _retention_days(args: ResourceValidationArgs, *path: str) -> Iterator[str]:
    days = get(args.props, *path)
    minimum: int = args.get_config()["minimumDays"]
    if not days or int(days) < minimum:
        yield f"{path[-1]} is {days or 'unset (kept forever, paid forever)'}: keep the logs at least {minimum} days, and not forever"


def _flow_log_retention(args: ResourceValidationArgs) -> Iterator[str]:
    """An Azure flow log's retention is its own (`retentionPolicy`), in the storage account it writes:
    off, or 0 days, keeps every record forever.
    """
    policy = get(args.props, "retentionPolicy")
    if get(policy, "enabled") is not True:
        yield "retentionPolicy is not enabled: the flow logs are kept forever, paid forever"
    else:
        yield from (f"retentionPolicy.{problem}" for problem in _retention_days(args, "retentionPolicy", "days"))


LOGS_RETAINED = resource_policy(
    "log-groups-retained",
    "Log groups keep their logs for a set time, long enough for an investigation (AWS retentionInDays, GCP log bucket retentionDays, "
    "Azure workspace retentionInDays, flow log retentionPolicy); their encryption is encrypted-with-stack-key's.",
    severity=Severity.MEDIUM,
    remediation="Set the retention (the program keeps flow logs 365 days in prod, 90 in staging, 30 in dev: providers/common/composition.py).",
    checks={
        "aws:cloudwatch/logGroup:LogGroup": lambda args: _retention_days(args, "retentionInDays"),
        "gcp:logging/projectBucketConfig:ProjectBucketConfig": lambda args: _retention_days(args, "retentionDays"),
        "azure-native:operationalinsights:Workspace": lambda args: _retention_days(args, "retentionInDays"),
        "azure-native:network:FlowLog": _flow_log_retention,
    },
    config_schema=PolicyConfigSchema({"minimumDays": {"type": "integer", "minimum": 1, "default": 30}}),
)

_AWS_BUCKET = "aws:s3/bucket:Bucket"
_PROMISED_CLASSES = ("STANDARD_IA", "GLACIER_IR")
"""The offsite lifecycle the README promises: Standard-IA, then Glacier Instant Retrieval."""
_GCS_MULTI_REGIONS = ("US", "EU", "ASIA", "NAM4", "EUR4", "EUR5", "EUR7", "EUR8", "ASIA1")
"""Cloud Storage's multi-regions and predefined dual-regions, which keep every object in two regions or more."""
_GEO_REDUNDANT_SKUS = ("Standard_GRS", "Standard_RAGRS", "Standard_GZRS", "Standard_RAGZRS")
_AZURE_ACCOUNT = "azure-native:storage:StorageAccount"
_AZURE_FLOW_LOG = "azure-native:network:FlowLog"


def _lifecycle_problems(config: PolicyResource) -> list[str]:
    rules = [r for r in items(get(config.props, "rules")) if get(r, "status") == "Enabled"]
    classes = [get(t, "storageClass") for r in rules for t in items(get(r, "transitions"))]
    problems = [f"no enabled transition to {c}" for c in _PROMISED_CLASSES if c not in classes]
    if not any(get(r, "noncurrentVersionExpiration") is not None for r in rules):
        problems.append("old versions never expire (noncurrentVersionExpiration)")
    if not any(get(r, "abortIncompleteMultipartUpload") is not None for r in rules):
        problems.append("incomplete uploads are kept (abortIncompleteMultipartUpload)")
    return problems


def _aws_bucket_problems(args: StackValidationArgs, bucket: PolicyResource, prod: bool) -> Iterator[str]:
    versioning = attached_to(args, bucket, "bucket", "aws:s3/bucketVersioning:BucketVersioning")
    if not any(get(v.props, "versioningConfiguration", "status") == "Enabled" for v in versioning):
        yield f"bucket {bucket.name} is not versioned: an overwrite or a delete loses the backup"
    lifecycles = attached_to(args, bucket, "bucket", "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    if not lifecycles:
        yield f"bucket {bucket.name} has no lifecycle (README: Standard-IA, then Glacier Instant Retrieval, old versions expire)"
    for lifecycle in lifecycles:
        yield from (f"bucket {bucket.name}'s lifecycle: {problem}" for problem in _lifecycle_problems(lifecycle))
    if prod:
        replications = attached_to(args, bucket, "bucket", "aws:s3/bucketReplicationConfig:BucketReplicationConfig")
        replicated = any(get(r, "status") == "Enabled" for c in replications for r in items(get(c.props, "rules")))
        replica = attached_to(args, bucket, "rules", "aws:s3/bucketReplicationConfig:BucketReplicationConfig")
        if not replicated and not replica:
            yield f"bucket {bucket.name} is neither replicated to another region nor a replica (design §4.4: offsite backups geo-replicated in prod)"


def _bucket_problems(args: StackValidationArgs, bucket: PolicyResource, prod: bool) -> Iterator[str]:
    match bucket.resource_type:
        case "aws:s3/bucket:Bucket":
            yield from _aws_bucket_problems(args, bucket, prod)
        case "gcp:storage/bucket:Bucket":
            if get(bucket.props, "versioning", "enabled") is not True:
                yield f"bucket {bucket.name} is not versioned"
            if not items(get(bucket.props, "lifecycleRules")):
                yield f"bucket {bucket.name} has no lifecycle rules"
            regions = items(get(bucket.props, "customPlacementConfig", "dataLocations"))
            if prod and len(regions) < 2 and str(get(bucket.props, "location")).upper() not in _GCS_MULTI_REGIONS:
                yield (f"bucket {bucket.name} keeps its data in one region ({get(bucket.props, 'location')}): in prod make it a dual-region "
                       "(customPlacementConfig.dataLocations) or a multi-region (design §4.4)")
        case _:
            if prod and get(bucket.props, "sku", "name") not in _GEO_REDUNDANT_SKUS:
                yield f"storage account {bucket.name} is not geo-redundant in prod (sku {get(bucket.props, 'sku', 'name')})"


def _bucket_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    prod = is_prod()
    buckets = [b for b in of_type(args, _AWS_BUCKET, "gcp:storage/bucket:Bucket", _AZURE_ACCOUNT) if not _log_store(args, b)]
    yield from judge_each(buckets, lambda bucket: _bucket_problems(args, bucket, prod))


def _log_store(args: StackValidationArgs, account: PolicyResource) -> bool:
    """An Azure storage account that flow logs write into: a log store, whose retention is the flow
    log's (`log-groups-retained`), as AWS's and GCP's flow logs go to their logging services; the
    backup rules are for the accounts that hold backups.
    """
    return account.resource_type == _AZURE_ACCOUNT and bool(attached_to(args, account, "storageId", _AZURE_FLOW_LOG))


BUCKETS_VERSIONED_AND_REPLICATED = stack_policy(
    "buckets-versioned-and-replicated",
    "Buckets are versioned, follow the lifecycle the README promises (Standard-IA, then Glacier Instant Retrieval; old versions and "
    "incomplete uploads expire), and in prod are replicated to another region (GCP: a dual- or multi-region bucket; Azure: a geo-redundant account).",
    severity=Severity.HIGH,
    remediation="Add a BucketVersioning (Enabled), the lifecycle of providers/aws/storage.py, and in prod a BucketReplicationConfig to "
    "the replica bucket in dpc:backup.offsiteReplicaRegion.",
    check=_bucket_violations,
    clouds=("aws", "gcp", "azure-native"),
)


def _deletion_protection(resource: PolicyResource) -> Iterator[str]:
    match resource.resource_type:
        case "aws:lb/loadBalancer:LoadBalancer":
            if get(resource.props, "enableDeletionProtection") is not True:
                yield f"load balancer {resource.name} can be deleted by a mistaken change: set enableDeletionProtection"
        case _:
            if get(resource.props, "deletionProtection") is not True:
                yield f"{resource.name} can be deleted by a mistaken change: set deletionProtection"


def _deletion_protection_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    if is_prod():
        yield from judge_each(of_type(args, "aws:lb/loadBalancer:LoadBalancer", "gcp:compute/instance:Instance"), _deletion_protection)


DELETION_PROTECTED_IN_PROD = stack_policy(
    "deletion-protection-in-prod",
    "In prod the database endpoint's load balancer (and GCP machines) have the cloud's own deletion protection.",
    severity=Severity.MEDIUM,
    remediation="Set enable_deletion_protection on the load balancer (deletion_protection on GCP machines) when the stack is prod.",
    check=_deletion_protection_violations,
    clouds=("aws", "gcp"),
)

POLICIES = [STATEFUL_PROTECTED, LOGS_RETAINED, BUCKETS_VERSIONED_AND_REPLICATED, DELETION_PROTECTED_IN_PROD]
