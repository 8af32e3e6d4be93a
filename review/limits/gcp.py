"""GCP's documented API limits, as checks over a plan (`review.limits`).

Each limit names the page of Google's documentation (or the pulumi-gcp SDK's own text, which the
provider copies from the API) it comes from. Names pulumi-gcp generates where the program gives
none (the logical name, a dash and seven hex digits) are checked as generated; everything else as
the plan gives it. Inputs are read by the property paths of the pulumi-gcp SDK (camelCase, as the
engine records them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, cast

from providers.gcp.mocks import autoname, generates_name, is_iam_grant
from review.limits import Breach, Check, PlanIndex, TextLimit, known, subnet_range, text_checks, values_at
from review.policy import PlannedResource

INSTANCE = "gcp:compute/instance:Instance"
DISK = "gcp:compute/disk:Disk"
REGION_DISK = "gcp:compute/regionDisk:RegionDisk"
FIREWALL = "gcp:compute/firewall:Firewall"
SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
HEALTH_CHECKS = ("gcp:compute/healthCheck:HealthCheck", "gcp:compute/regionHealthCheck:RegionHealthCheck")
BUCKET = "gcp:storage/bucket:Bucket"
CRYPTO_KEY = "gcp:kms/cryptoKey:CryptoKey"
KEY_RING = "gcp:kms/keyRing:KeyRing"
SECRET = "gcp:secretmanager/secret:Secret"
SECRET_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
SERVICE_ACCOUNT = "gcp:serviceaccount/account:Account"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
BUDGET = "gcp:billing/budget:Budget"
LOG_BUCKET = "gcp:logging/projectBucketConfig:ProjectBucketConfig"

_NAMING_DOCS = "https://cloud.google.com/compute/docs/naming-resources#resource-name-format"
COMPUTE_NAME = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")
"""RFC 1035 labels, as every Compute Engine resource name (and network tag, and device name) must be."""
_COMPUTE_NAME_SAID = "a lowercase letter, then lowercase letters, digits or -, not ending in -"
_LABELS_DOCS = "https://cloud.google.com/resource-manager/docs/labels-overview#requirements"
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
MAX_LABELS = 64
_TAGS_DOCS = "https://cloud.google.com/vpc/docs/add-remove-network-tags#restrictions"
MAX_NETWORK_TAGS = 64
_FIREWALL_DOCS = "https://cloud.google.com/compute/docs/reference/rest/v1/firewalls"
_FIREWALL_QUOTAS = "https://cloud.google.com/firewall/quotas#per_firewall_rule"
FIREWALL_LIST_LIMITS = {"sourceTags": 30, "targetTags": 70, "sourceServiceAccounts": 10, "targetServiceAccounts": 10}
"""How many source and target tags and service accounts one VPC firewall rule takes."""
_METADATA_DOCS = "https://cloud.google.com/compute/docs/metadata/setting-custom-metadata#limitations"
METADATA_VALUE_MAX_BYTES = 256 * 1024
METADATA_TOTAL_MAX_BYTES = 512 * 1024
_METADATA_KEY = re.compile(r"[a-zA-Z0-9_-]+")
_DISK_DOCS = "https://cloud.google.com/compute/docs/disks/persistent-disks#disk_types"
DISK_SIZES_GB = {"pd-standard": (10, 65536), "pd-balanced": (10, 65536), "pd-ssd": (10, 65536), "pd-extreme": (500, 65536)}
"""Zonal persistent disks' sizes (GB) by type."""
REGIONAL_DISK_SIZES_GB = {"pd-standard": (200, 65536), "pd-balanced": (10, 65536), "pd-ssd": (10, 65536)}
"""Regional persistent disks' sizes (GB) by type: a regional standard disk starts at 200 GB."""
_KMS_DOCS = "https://cloud.google.com/kms/docs/reference/rest/v1/projects.locations.keyRings.cryptoKeys"
KEY_ROTATION_SECONDS = (24 * 3600, 876_000 * 3600)
"""A key's rotation period: at least 24 hours, at most 876,000 hours."""
_BUCKET_DOCS = "https://cloud.google.com/storage/docs/buckets#naming"
_SECRET_DOCS = "https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets/create"
SECRET_PAYLOAD_MAX_BYTES = 64 * 1024
_SECRET_QUOTAS = "https://cloud.google.com/secret-manager/quotas"
_ACCOUNTS_DOCS = "https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts"
_BUDGET_DOCS = "https://cloud.google.com/billing/docs/reference/budget/rest/v1/billingAccounts.budgets"
_KMS_NAMES_DOCS = "https://cloud.google.com/kms/docs/create-key-ring"
_KMS_NAME = re.compile(r"[a-zA-Z0-9_-]+")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*[a-z0-9]")
_BUCKET_NAME_SAID = "lowercase letters, digits, -, _ and ., a letter or digit at each end"
_IAM_DOCS = "https://cloud.google.com/iam/docs/reference/rest/v1/Policy#Binding"
_PRINCIPAL = re.compile(r"(allUsers|allAuthenticatedUsers|(user|serviceAccount|group|domain|principal|principalSet|deleted:[a-zA-Z]+):.+)")
_CMEK_DOCS = "https://cloud.google.com/kms/docs/cmek#cmek_integrations"
_HEALTH_DOCS = "https://cloud.google.com/compute/docs/reference/rest/v1/regionHealthChecks"
_SUBNET_DOCS = "https://cloud.google.com/vpc/docs/subnets#valid-ranges"
SMALLEST_SUBNET_PREFIX = 29
"""The smallest primary IPv4 range of a subnetwork, /29."""

TEXT_LIMITS = (
    TextLimit((SERVICE_ACCOUNT,), "accountId", "service account id", 30,
              "https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts/create", COMPUTE_NAME, _COMPUTE_NAME_SAID, 6),
    TextLimit((SERVICE_ACCOUNT,), "displayName", "service account display name", 100, _ACCOUNTS_DOCS, None, "", 0),
    TextLimit((SERVICE_ACCOUNT,), "description", "service account description", 256, _ACCOUNTS_DOCS, None, "", 0),
    TextLimit((SECRET,), "secretId", "secret id", 255, _SECRET_DOCS, re.compile(r"[a-zA-Z0-9_-]+"), "letters, digits, _ and -"),
    TextLimit((KEY_RING, CRYPTO_KEY), "name", "key ring or key name", 63, _KMS_NAMES_DOCS, _KMS_NAME, "letters, digits, _ and -"),
    TextLimit((REPOSITORY,), "repositoryId", "repository id", 63, "https://cloud.google.com/artifact-registry/docs/repositories/create-repos#create",
              COMPUTE_NAME, _COMPUTE_NAME_SAID),
    TextLimit((BUCKET,), "name", "bucket name", 63, _BUCKET_DOCS, _BUCKET_NAME, _BUCKET_NAME_SAID, 3),
    TextLimit((FIREWALL,), "description", "firewall rule description", 2048, _FIREWALL_DOCS, None, "", 0),
    TextLimit((FIREWALL,), "sourceTags[]", "network tag", 63, _TAGS_DOCS, COMPUTE_NAME, _COMPUTE_NAME_SAID),
    TextLimit((FIREWALL,), "targetTags[]", "network tag", 63, _TAGS_DOCS, COMPUTE_NAME, _COMPUTE_NAME_SAID),
    TextLimit((INSTANCE,), "tags[]", "network tag", 63, _TAGS_DOCS, COMPUTE_NAME, _COMPUTE_NAME_SAID),
    TextLimit((INSTANCE,), "attachedDisks[].deviceName", "device name", 63, "https://cloud.google.com/compute/docs/reference/rest/v1/instances/attachDisk",
              COMPUTE_NAME, _COMPUTE_NAME_SAID),
    TextLimit((BUDGET,), "displayName", "budget display name", 60, _BUDGET_DOCS, None, "", 0),
)


def _compute_names(plan: PlanIndex) -> Iterator[Breach]:
    """Every Compute Engine resource's name, given or generated, is an RFC 1035 label of at most 63."""
    limit = TextLimit((), "name", "Compute Engine resource name", 63, _NAMING_DOCS, COMPUTE_NAME, _COMPUTE_NAME_SAID)
    for resource in plan.resources:
        if not resource.type.startswith("gcp:compute/"):
            continue
        if "name" in resource.inputs:
            yield from limit.breaches(resource)
        elif generates_name(resource.type):
            generated = autoname(resource.name)
            if not (len(generated) <= 63 and COMPUTE_NAME.fullmatch(generated)):
                message = f"generated from the logical name as {generated!r}, which Compute Engine refuses ({_COMPUTE_NAME_SAID}, at most 63)"
                yield Breach(resource.urn, "name", message, _NAMING_DOCS)


NOT_RESOURCE_LABELS = frozenset({"gcp:monitoring/notificationChannel:NotificationChannel"})
"""Types whose `labels` input is their configuration (a channel's email address), not labels: their
labels are `userLabels`."""


def _labels(plan: PlanIndex) -> Iterator[Breach]:
    """Labels: at most 64; keys a lowercase letter then up to 62 of [a-z0-9_-]; values up to 63 of them."""
    for resource in plan.resources:
        gcp_type = resource.type.startswith("gcp:")
        labels = resource.inputs.get("userLabels" if resource.type in NOT_RESOURCE_LABELS else "labels") if gcp_type else None
        if not isinstance(labels, Mapping):
            continue
        label_map = cast(Mapping[str, Any], labels)
        if len(label_map) > MAX_LABELS:
            yield Breach(resource.urn, "labels", f"{len(label_map)} labels; GCP takes at most {MAX_LABELS}", _LABELS_DOCS)
        for key, value in label_map.items():
            if not _LABEL_KEY.fullmatch(key):
                yield Breach(resource.urn, f"labels.{key}", "label keys take a lowercase letter, then up to 62 lowercase letters, digits, _ or -", _LABELS_DOCS)
            if isinstance(value, str) and known(value) and not _LABEL_VALUE.fullmatch(value):
                yield Breach(resource.urn, f"labels.{key}", f"label value {value!r}: at most 63 lowercase letters, digits, _ or -", _LABELS_DOCS)


def _bucket_names(plan: PlanIndex) -> Iterator[Breach]:
    """Bucket names (given or generated) cannot begin with `goog` nor contain `google` or a close misspelling."""
    for bucket in plan.of_type(BUCKET):
        name = bucket.inputs.get("name", autoname(bucket.name))
        if isinstance(name, str) and known(name) and (name.startswith("goog") or re.search(r"g[o0]{2}g[l1]e", name)):
            yield Breach(bucket.urn, "name", f"bucket name {name!r}: names cannot begin with goog nor contain google or a close misspelling", _BUCKET_DOCS)


def _duration_seconds(value: object) -> float | None:
    """A protobuf duration as the API takes it (`7776000s`), in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", value) if isinstance(value, str) else None
    return float(match.group(1)) if match else None


def _key_rotation(plan: PlanIndex) -> Iterator[Breach]:
    """A key's rotation period is a duration between 24 hours and 876,000 hours."""
    low, high = KEY_ROTATION_SECONDS
    for key in plan.of_type(CRYPTO_KEY):
        period = key.inputs.get("rotationPeriod")
        if not known(period):
            continue
        seconds = _duration_seconds(period)
        if seconds is None or not low <= seconds <= high:
            yield Breach(key.urn, "rotationPeriod", f"{period!r}: Cloud KMS takes a duration in seconds (`86400s`) between 24 and 876,000 hours", _KMS_DOCS)


def _metadata(plan: PlanIndex) -> Iterator[Breach]:
    """Instance metadata: keys of [a-zA-Z0-9_-] under 128 bytes, each value at most 256 KiB, all
    keys and values together at most 512 KiB (the startup script counts as its metadata key).
    """
    for instance in plan.of_type(INSTANCE):
        metadata = cast(Mapping[str, Any], instance.inputs.get("metadata") or {})
        entries = dict(metadata)
        if "metadataStartupScript" in instance.inputs:
            entries["startup-script"] = instance.inputs["metadataStartupScript"]
        total = 0
        for key, value in entries.items():
            if not _METADATA_KEY.fullmatch(key) or len(key.encode()) >= 128:
                yield Breach(instance.urn, f"metadata.{key}", "metadata keys take [a-zA-Z0-9_-], under 128 bytes", _METADATA_DOCS)
            size = len(value.encode()) if isinstance(value, str) and known(value) else 0
            if size > METADATA_VALUE_MAX_BYTES:
                yield Breach(instance.urn, f"metadata.{key}", f"{size} bytes; a metadata value takes at most {METADATA_VALUE_MAX_BYTES}", _METADATA_DOCS)
            total += len(key.encode()) + size
        if total > METADATA_TOTAL_MAX_BYTES:
            yield Breach(instance.urn, "metadata", f"{total} bytes of keys and values; an instance takes at most {METADATA_TOTAL_MAX_BYTES}", _METADATA_DOCS)


def _disk_size(urn: str, where: str, disk_type: object, size: object, sizes: Mapping[str, tuple[int, int]]) -> Iterator[Breach]:
    if not isinstance(disk_type, str) or not isinstance(size, (int, float)):
        return
    bounds = sizes.get(disk_type.rsplit("/", 1)[-1])
    if bounds is not None and not bounds[0] <= size <= bounds[1]:
        yield Breach(urn, where, f"{size:g} GB of {disk_type}; it takes {bounds[0]}–{bounds[1]} GB", _DISK_DOCS)


def _disk_sizes(plan: PlanIndex) -> Iterator[Breach]:
    """Persistent disks' sizes within their type's range (a boot disk's too)."""
    for disk in plan.of_type(DISK):
        yield from _disk_size(disk.urn, "size", disk.inputs.get("type", "pd-standard"), disk.inputs.get("size"), DISK_SIZES_GB)
    for disk in plan.of_type(REGION_DISK):
        yield from _disk_size(disk.urn, "size", disk.inputs.get("type", "pd-standard"), disk.inputs.get("size"), REGIONAL_DISK_SIZES_GB)
    for instance in plan.of_type(INSTANCE):
        params = cast(Mapping[str, Any], cast(Mapping[str, Any], instance.inputs.get("bootDisk") or {}).get("initializeParams") or {})
        yield from _disk_size(instance.urn, "bootDisk.initializeParams.size", params.get("type", "pd-standard"), params.get("size"), DISK_SIZES_GB)


def _firewalls(plan: PlanIndex) -> Iterator[Breach]:
    """A VPC firewall rule: at most 30 source tags, 70 target tags, 10 service accounts each way;
    tags and service accounts not mixed (a rule filters by one or the other); no source filter on
    an egress rule.
    """
    for rule in plan.of_type(FIREWALL):
        for field_name, limit in FIREWALL_LIST_LIMITS.items():
            listed = rule.inputs.get(field_name)
            if isinstance(listed, list) and len(cast(list[Any], listed)) > limit:
                yield Breach(rule.urn, field_name, f"{len(cast(list[Any], listed))} entries; a firewall rule takes at most {limit}", _FIREWALL_QUOTAS)
        by_tag = any(rule.inputs.get(f) for f in ("sourceTags", "targetTags"))
        by_account = any(rule.inputs.get(f) for f in ("sourceServiceAccounts", "targetServiceAccounts"))
        if by_tag and by_account:
            yield Breach(rule.urn, "sourceTags", "a rule filters by network tags or by service accounts, not both", _FIREWALL_DOCS)
        if rule.inputs.get("direction") == "EGRESS" and any(rule.inputs.get(f) for f in ("sourceTags", "sourceServiceAccounts")):
            yield Breach(rule.urn, "direction", "an egress rule takes no source tags or source service accounts", _FIREWALL_DOCS)


def _tag_counts(plan: PlanIndex) -> Iterator[Breach]:
    for instance in plan.of_type(INSTANCE):
        tags = instance.inputs.get("tags")
        if isinstance(tags, list) and len(cast(list[Any], tags)) > MAX_NETWORK_TAGS:
            yield Breach(instance.urn, "tags", f"{len(cast(list[Any], tags))} network tags; an instance takes at most {MAX_NETWORK_TAGS}", _TAGS_DOCS)


def _health_checks(plan: PlanIndex) -> Iterator[Breach]:
    """A health check's timeout is no longer than its interval (both 5 s by default)."""
    for check in plan.of_type(*HEALTH_CHECKS):
        timeout, interval = check.inputs.get("timeoutSec", 5), check.inputs.get("checkIntervalSec", 5)
        if isinstance(timeout, (int, float)) and isinstance(interval, (int, float)) and timeout > interval:
            yield Breach(check.urn, "timeoutSec", f"{timeout:g} s is longer than the {interval:g} s interval", _HEALTH_DOCS)


def _subnetworks(plan: PlanIndex) -> Iterator[Breach]:
    """A subnetwork's primary range is a valid IPv4 network no smaller than /29."""
    for subnet in plan.of_type(SUBNETWORK):
        cidr = subnet.inputs.get("ipCidrRange")
        if isinstance(cidr, str) and known(cidr):
            yield from subnet_range(subnet.urn, "ipCidrRange", cidr, SMALLEST_SUBNET_PREFIX, _SUBNET_DOCS)[1]


def _secret_payloads(plan: PlanIndex) -> Iterator[Breach]:
    """Secret Manager refuses a secret version over 64 KiB."""
    for version in plan.of_type(SECRET_VERSION):
        data = version.inputs.get("secretData")
        if isinstance(data, str) and known(data) and len(data.encode()) > SECRET_PAYLOAD_MAX_BYTES:
            yield Breach(version.urn, "secretData", f"{len(data.encode())} bytes; a secret version takes at most {SECRET_PAYLOAD_MAX_BYTES}", _SECRET_QUOTAS)


def _iam_members(plan: PlanIndex) -> Iterator[Breach]:
    """An IAM member names its kind of principal (`serviceAccount:`, `user:`, ...)."""
    for resource in plan.resources:
        if not resource.type.startswith("gcp:") or not is_iam_grant(resource.type):
            continue
        members = [resource.inputs.get("member"), *cast(list[object], resource.inputs.get("members") or [])]
        for member in members:
            if isinstance(member, str) and known(member) and not _PRINCIPAL.fullmatch(member):
                yield Breach(resource.urn, "member", f"{member!r} names no kind of principal (serviceAccount:, user:, group:, domain:, ...)", _IAM_DOCS)


def _key_location(key_id: object) -> str | None:
    """The location of a Cloud KMS key from its id (`projects/p/locations/l/keyRings/r/cryptoKeys/k`)."""
    match = re.search(r"/locations/([^/]+)/keyRings/", key_id) if isinstance(key_id, str) else None
    return match.group(1) if match else None


def _zone_region(zone: object) -> str | None:
    return zone.rsplit("-", 1)[0] if isinstance(zone, str) and known(zone) else None


def _encrypted(resource: PlannedResource) -> Iterator[tuple[str, object, set[str]]]:
    """Each CMEK key a resource names (where, the key's id) with the locations its key may be in."""
    inputs = resource.inputs
    if resource.type == DISK and (region := _zone_region(inputs.get("zone"))):
        for where, key in values_at(inputs, "diskEncryptionKey.kmsKeySelfLink"):
            yield where, key, {region, "global"}
    if resource.type == INSTANCE and (region := _zone_region(inputs.get("zone"))):
        for where, key in values_at(inputs, "bootDisk.kmsKeySelfLink"):
            yield where, key, {region, "global"}
    if resource.type == BUCKET and isinstance(location := inputs.get("location"), str):
        for where, key in values_at(inputs, "encryption.defaultKmsKeyName"):
            yield where, key, {location.lower()}
    if resource.type == REPOSITORY and isinstance(location := inputs.get("location"), str):
        yield "kmsKeyName", inputs.get("kmsKeyName"), {location}
    if resource.type == LOG_BUCKET and isinstance(location := inputs.get("location"), str):
        yield "cmekSettings.kmsKeyName", cast(Mapping[str, Any], inputs.get("cmekSettings") or {}).get("kmsKeyName"), {location}
    if resource.type == SECRET:
        for where, replica in values_at(inputs, "replication.userManaged.replicas[]"):
            if isinstance(replica, Mapping):
                replica_map = cast(Mapping[str, Any], replica)
                encryption = cast(Mapping[str, Any], replica_map.get("customerManagedEncryption") or {})
                yield f"{where}.customerManagedEncryption.kmsKeyName", encryption.get("kmsKeyName"), {str(replica_map.get("location"))}


def _key_locations(plan: PlanIndex) -> Iterator[Breach]:
    """A CMEK key is used only in its own location: the disk's region (or global), the bucket's
    location (a dual-region's multi-region), the repository's, the log bucket's, each secret replica's.
    """
    for resource in plan.resources:
        for where, key, allowed in _encrypted(resource):
            location = _key_location(key)
            if location is not None and location not in allowed:
                yield Breach(resource.urn, where, f"a key in {location} cannot protect data in {' or '.join(sorted(allowed))}", _CMEK_DOCS)


CHECKS: tuple[Check, ...] = (
    text_checks(TEXT_LIMITS),
    _compute_names,
    _labels,
    _bucket_names,
    _key_rotation,
    _metadata,
    _disk_sizes,
    _firewalls,
    _tag_counts,
    _health_checks,
    _subnetworks,
    _secret_payloads,
    _iam_members,
    _key_locations,
)
