"""Lifecycle: the resources that hold data or the keys to it (volumes, disks, buckets, keys) are
protected, so that deleting them takes an explicit `pulumi state unprotect` rather than a mistaken
change. The program protects them in prod; the per-environment configs enforce this rule in prod
and switch it off where stacks are meant to be torn down.
"""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import ResourceValidationArgs, Severity

from policies.common import resource_policy

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
)


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

POLICIES = [STATEFUL_PROTECTED]
