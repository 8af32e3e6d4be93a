"""Cases of the rules published rule sets have (CIS, AWS Foundational Security Best Practices) that
the pack lacked: least-privilege IAM, key policies, log retention, versioned and replicated
buckets, internal load balancers, deletion protection, registries, the metadata hop limit, images
by digest, the Docker socket, meaningful tags.
"""

from __future__ import annotations

import json
from typing import Any

from tests.unit.policy_cases import GROUPS, IMAGES, NETWORKS, TAGS, Case, res, swarm_service

LOCAL_BUILD = res("docker:index/image:Image", "built", {"imageName": "dpc-services:1", "skipPush": True})
"""A project image the local stack builds into its engine and never pushes."""
OWNER_ROLE = "/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"


def _document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _allow(action: str | list[str], resource: str | list[str] = "arn:aws:s3:::dpc-backups/*", **more: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **more}


def _role_policy(name: str, *statements: dict[str, Any]) -> Any:
    return res("aws:iam/rolePolicy:RolePolicy", name, {"role": "r", "policy": _document(*statements)})


def _key(name: str, principal: Any) -> Any:
    statement = {"Sid": "Use", "Effect": "Allow", "Principal": principal, "Action": "kms:Decrypt", "Resource": "*"}
    return res("aws:kms/key:Key", name, {"enableKeyRotation": True, "policy": _document(statement)})


def _bucket(name: str, *, versioned: bool = True, classes: tuple[str, ...] = ("STANDARD_IA", "GLACIER_IR")) -> list[Any]:
    bucket = res("aws:s3/bucket:Bucket", name, {})
    rule = {"id": "r", "status": "Enabled", "abortIncompleteMultipartUpload": {"daysAfterInitiation": 7},
            "noncurrentVersionExpiration": {"noncurrentDays": 30}, "transitions": [{"days": 30 * (i + 1), "storageClass": c} for i, c in enumerate(classes)]}
    attached = [res("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", f"{name}-lifecycle", {"bucket": name, "rules": [rule]},
                    deps={"bucket": [bucket]})]
    if versioned:
        attached.append(res("aws:s3/bucketVersioning:BucketVersioning", f"{name}-versioning",
                            {"bucket": name, "versioningConfiguration": {"status": "Enabled"}}, deps={"bucket": [bucket]}))
    return [bucket, *attached]


def _replicated(source: list[Any], replica: list[Any]) -> list[Any]:
    config = res("aws:s3/bucketReplicationConfig:BucketReplicationConfig", "replication",
                 {"bucket": "b", "role": "arn:aws:iam::123456789012:role/r", "rules": [{"status": "Enabled", "destination": {"bucket": "arn:aws:s3:::r"}}]},
                 deps={"bucket": [source[0]], "rules": [replica[0]]})
    return [*source, *replica, config]


def _machine(name: str, hops: int | None, group: Any) -> Any:
    options = {"httpTokens": "required", **({"httpPutResponseHopLimit": hops} if hops is not None else {})}
    return res("aws:ec2/instance:Instance", name, {"metadataOptions": options, "vpcSecurityGroupIds": ["sg-1"]}, deps={"vpcSecurityGroupIds": [group]})


def _with_mount(name: str, runs: str, source: str, *networks: str) -> Any:
    return swarm_service(name, runs, *networks, mounts=[{"type": "bind", "source": source, "target": "/host", "readOnly": True}])


COVERAGE_CASES = [
    Case(
        "iam-least-privilege",
        "aws: named actions and resources; * only for actions that take no resource",
        [_role_policy("ok", _allow(["s3:GetObject", "s3:PutObject"]), _allow("ecr:GetAuthorizationToken", "*"), {"Effect": "Deny", "Action": "*",
                                                                                                               "Resource": "*"})],
        [_role_policy("star-action", _allow("s3:*")), _role_policy("star-resource", _allow("s3:GetObject", "*")),
         _role_policy("escalate", _allow("iam:PassRole", "arn:aws:iam::123456789012:role/any")), _role_policy("not-action", {"Effect": "Allow",
                                                                                                                             "NotAction": "iam:*",
                                                                                                                             "Resource": "*"}),
         res("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "admin", {"role": "r", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"})],
        offenders=5,
    ),
    Case(
        "iam-least-privilege",
        "gcp and azure: no owner or editor",
        [res("gcp:projects/iAMMember:IAMMember", "m", {"project": "p", "role": "roles/logging.logWriter", "member": "serviceAccount:w@p.iam"})],
        [res("gcp:projects/iAMMember:IAMMember", "m", {"project": "p", "role": "roles/editor", "member": "serviceAccount:w@p.iam"}),
         res("azure-native:authorization:RoleAssignment", "a", {"principalId": "x", "scope": "/subscriptions/s",
                                                                 "roleDefinitionId": OWNER_ROLE})],
        offenders=2,
    ),
    Case(
        "key-policies-name-principals",
        "aws and gcp: no wildcard principal",
        [_key("k", {"AWS": "arn:aws:iam::123456789012:root"}), _key("logs", {"Service": "logs.us-east-1.amazonaws.com"})],
        [_key("star", "*"), _key("aws-star", {"AWS": ["arn:aws:iam::123456789012:root", "*"]}),
         res("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "pub", {"cryptoKeyId": "k", "role": "roles/cloudkms.cryptoKeyDecrypter", "member": "allUsers"})],
        offenders=3,
    ),
    Case(
        "log-groups-retained",
        "aws, gcp, azure",
        [res("aws:cloudwatch/logGroup:LogGroup", "l", {"retentionInDays": 365}),
         res("azure-native:operationalinsights:Workspace", "w", {"retentionInDays": 90})],
        [res("aws:cloudwatch/logGroup:LogGroup", "forever", {"kmsKeyId": "k"}), res("aws:cloudwatch/logGroup:LogGroup", "short", {"retentionInDays": 1}),
         res("gcp:logging/projectBucketConfig:ProjectBucketConfig", "b", {"bucketId": "b", "location": "global", "project": "p"})],
        offenders=3,
    ),
    Case(
        "buckets-versioned-and-replicated",
        "aws: versioned, the promised lifecycle, replicated in prod",
        _replicated(_bucket("backups"), _bucket("replica")),
        [*_bucket("unversioned", versioned=False), *_bucket("no-archive", classes=("STANDARD_IA",)), *_bucket("single")],
        offenders=3,
    ),
    Case(
        "buckets-versioned-and-replicated",
        "gcp and azure",
        [res("gcp:storage/bucket:Bucket", "g", {"location": "US", "versioning": {"enabled": True}, "lifecycleRules": [{"action": {"type": "Delete"},
                                                                                                                   "condition": {"age": 2555}}]}),
         res("azure-native:storage:StorageAccount", "s", {"sku": {"name": "Standard_RAGZRS"}})],
        [res("gcp:storage/bucket:Bucket", "g", {"location": "US"}), res("azure-native:storage:StorageAccount", "s", {"sku": {"name": "Standard_LRS"}})],
        offenders=2,
    ),
    Case(
        "deletion-protection-in-prod",
        "aws load balancer, gcp machine",
        [res("aws:lb/loadBalancer:LoadBalancer", "nlb", {"internal": True, "enableDeletionProtection": True})],
        [res("aws:lb/loadBalancer:LoadBalancer", "nlb", {"internal": True}), res("gcp:compute/instance:Instance", "vm", {"machineType": "e2-small"})],
        offenders=2,
    ),
    Case(
        "load-balancers-internal",
        "internal unless the stack names clients",
        [res("aws:lb/loadBalancer:LoadBalancer", "nlb", {"internal": True}),
         res("gcp:compute/forwardingRule:ForwardingRule", "f", {"loadBalancingScheme": "INTERNAL_MANAGED"})],
        [res("aws:lb/loadBalancer:LoadBalancer", "nlb", {"internal": False}), res("gcp:compute/forwardingRule:ForwardingRule", "f", {"region": "r"}),
         res("azure-native:network:LoadBalancer", "a", {"frontendIPConfigurations": [{"name": "f", "publicIPAddress": {"id": "/pip"}}]})],
        offenders=3,
    ),
    Case(
        "registries-immutable-and-scanned",
        "ecr, artifact registry, acr",
        [res("aws:ecr/repository:Repository", "r", {"imageTagMutability": "IMMUTABLE", "imageScanningConfiguration": {"scanOnPush": True}}),
         res("gcp:artifactregistry/repository:Repository", "g", {"format": "DOCKER", "dockerConfig": {"immutableTags": True}})],
        [res("aws:ecr/repository:Repository", "r", {"imageTagMutability": "MUTABLE", "imageScanningConfiguration": {"scanOnPush": True}}),
         res("aws:ecr/repository:Repository", "unscanned", {"imageTagMutability": "IMMUTABLE"}),
         res("gcp:artifactregistry/repository:Repository", "g", {"format": "DOCKER"}),
         res("azure-native:containerregistry:Registry", "a", {"sku": {"name": "Premium"}})],
        offenders=4,
    ),
    Case(
        "aws-imds-hop-limit",
        "one documented machine may reach its containers",
        [*GROUPS, _machine("w", 1, GROUPS[1]), _machine("backup", 2, GROUPS[1]),
         res("aws:ec2/launchTemplate:LaunchTemplate", "t", {"metadataOptions": {"httpPutResponseHopLimit": 1}})],
        [*GROUPS, _machine("backup", 2, GROUPS[1]), _machine("second", 2, GROUPS[0]), _machine("far", 64, GROUPS[2]), _machine("unset", None, GROUPS[2])],
        offenders=3,
    ),
    Case(
        "images-pinned-by-digest",
        "docker: digests, or a local build never pushed",
        [*IMAGES.values(), swarm_service("grafana", "grafana"), swarm_service("etcd-1", "etcd-1"), LOCAL_BUILD,
         res("docker:index/service:Service", "local", {"name": "local", "taskSpec": {"containerSpec": {"image": "dpc-services:1"}}},
             deps={"taskSpec": [LOCAL_BUILD]})],
        [res("docker:index/service:Service", "tagged", {"name": "g", "taskSpec": {"containerSpec": {"image": "grafana/grafana:11.3.0"}}}),
         res("docker:index/service:Service", "latest", {"name": "l", "taskSpec": {"containerSpec": {"image": "registry.invalid/x:latest"}}},
             deps={"taskSpec": [IMAGES["services"]]})],
        offenders=2,
    ),
    Case(
        "no-docker-socket-in-services",
        "docker: only the documented exporters, known by what they run",
        [*NETWORKS.values(), *IMAGES.values(), _with_mount("cadvisor", "cadvisor", "/var/run", "monitoring-net"),
         _with_mount("patroni-1", "patroni-1", "/mnt/postgres-cluster/patroni-1")],
        [*NETWORKS.values(), *IMAGES.values(), _with_mount("cadvisor", "prometheus", "/var/run/docker.sock"),
         _with_mount("backup", "backup", "/"), _with_mount("redis", "redis", "/run/")],
        offenders=3,
    ),
    Case(
        "required-tags",
        "values that say nothing",
        [res("aws:ebs/volume:Volume", "v", {"tags": TAGS})],
        [res("aws:ebs/volume:Volume", "dash", {"tags": {**TAGS, "Owner": "-"}}), res("aws:ebs/volume:Volume", "na", {"tags": {**TAGS, "CostCenter": "N/A"}}),
         res("gcp:compute/disk:Disk", "tbd", {"labels": {"environment": "prod", "service": "pg", "owner": "tbd", "cost_center": "db"}})],
        offenders=3,
    ),
]
