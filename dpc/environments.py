"""Defaults of each environment (design §1.2): prod is the original AWS sizing and storage; staging and dev
are smaller and cheaper but keep 3 etcd and 3 Patroni members, so every environment fails over
the same way.

A stack file overrides any of these key by key; lists are replaced whole.

Prod's data volume has the original size and IOPS but 690 MiB/s, not 1000 (design §11.7): an
r6i.2xlarge drives at most 10 Gbps (1192 MiB/s) of EBS for all its volumes together, so data and
WAL (500 MiB/s) share that; more would be paid for and never reach the machine. Its sustained
figures are lower still (12 000 IOPS, 298 MiB/s); the maximum holds for at least 30 minutes a day, which is
what checkpoints and backups need.

The offsite lifecycle (`_BACKUP`): infrequent access after 30 days and archive (Glacier Instant
Retrieval) after 90, the earliest S3 allows; pgBackRest keeps the offsite fulls 7 years (2555
days, design §4.4) and deletes them itself.
"""

from __future__ import annotations

from typing import Literal

Environment = Literal["dev", "staging", "prod"]

_BACKUP = {
    "walRetentionDays": 30,
    "dailyRetentionDays": 7,
    "weeklyRetentionWeeks": 4,
    "monthlyRetentionMonths": 12,
    "offsiteInfrequentAccessAfterDays": 30,
    "offsiteArchiveAfterDays": 90,
    "offsiteExpireAfterDays": 2555,
}

_IMAGE = {"owner": "136693071363", "name": "debian-12-amd64-20241201-1948"}


def _nodes(manager: str, worker: str, app: str, *, backup_count: int, manager_root: int, node_root: int) -> dict[str, object]:
    """Design §4.1: managers keep etcd data on their root volume; other nodes only the OS."""
    return {
        "managers": {"count": 3, "machineType": manager, "rootVolumeGb": manager_root},
        "workers": {"count": 3, "machineType": worker, "rootVolumeGb": node_root},
        "app": {"count": 2, "machineType": app, "rootVolumeGb": node_root},
        "backup": {"count": backup_count, "machineType": app, "rootVolumeGb": node_root},
        "bastion": {"machineType": "t3.micro", "rootVolumeGb": 20},
    }


ENVIRONMENT_DEFAULTS: dict[Environment, dict[str, object]] = {
    "prod": {
        "cloud": "aws",
        "environment": "prod",
        "nodes": _nodes("t3.xlarge", "r6i.2xlarge", "t3.large", backup_count=1, manager_root=500, node_root=100),
        "storage": {
            "data": {"sizeGb": 2048, "iops": 16000, "throughputMbps": 690},
            "wal": {"sizeGb": 500, "iops": 6000, "throughputMbps": 500},
            "backup": {"sizeGb": 5120, "iops": 3000, "throughputMbps": 250},
        },
        "backup": _BACKUP,
        "access": {"adminCidrs": [], "clientCidrs": [], "sshPublicKeys": []},
        "database": {"expectedConcurrentUsers": 500, "expectedTps": 1000},
        "image": _IMAGE,
    },
    "staging": {
        "cloud": "aws",
        "environment": "staging",
        "nodes": _nodes("t3.medium", "r6i.large", "t3.medium", backup_count=0, manager_root=100, node_root=40),
        "storage": {
            "data": {"sizeGb": 200, "iops": 3000, "throughputMbps": 125},
            "wal": {"sizeGb": 50, "iops": 3000, "throughputMbps": 125},
            "backup": {"sizeGb": 500, "iops": 3000, "throughputMbps": 125},
        },
        "backup": _BACKUP | {"dailyRetentionDays": 7, "walRetentionDays": 14, "monthlyRetentionMonths": 3},
        "access": {"adminCidrs": [], "clientCidrs": [], "sshPublicKeys": []},
        "database": {"expectedConcurrentUsers": 200, "expectedTps": 500},
        "image": _IMAGE,
    },
    "dev": {
        "cloud": "aws",
        "environment": "dev",
        "nodes": _nodes("t3.small", "t3.large", "t3.small", backup_count=0, manager_root=40, node_root=30),
        "storage": {
            "data": {"sizeGb": 50, "iops": 3000, "throughputMbps": 125},
            "wal": {"sizeGb": 20, "iops": 3000, "throughputMbps": 125},
            "backup": {"sizeGb": 100, "iops": 3000, "throughputMbps": 125},
        },
        "backup": _BACKUP | {"walRetentionDays": 7, "dailyRetentionDays": 3, "weeklyRetentionWeeks": 1, "monthlyRetentionMonths": 1},
        "access": {"adminCidrs": [], "clientCidrs": [], "sshPublicKeys": []},
        "database": {"expectedConcurrentUsers": 50, "expectedTps": 100},
        "image": _IMAGE,
    },
}


LOCAL_DEFAULTS: dict[str, object] = {
    "region": "local",
    "zones": ["local-1"],
    "tags": {"Environment": "local", "Service": "postgres", "Owner": "local", "CostCenter": "local"},
    "network": {
        "vpcCidr": "10.99.0.0/16",
        "privateSubnetCidrs": ["10.99.0.0/20"],
        "publicSubnetCidrs": ["10.99.128.0/24"],
        "natGatewayPerZone": False,
    },
    "nodes": {
        "managers": {"count": 3, "machineType": "local", "rootVolumeGb": 20},
        "workers": {"count": 3, "machineType": "local", "rootVolumeGb": 20},
        "app": {"count": 2, "machineType": "local", "rootVolumeGb": 20},
        "backup": {"count": 0, "machineType": "local", "rootVolumeGb": 20},
        "bastion": {"machineType": "local", "rootVolumeGb": 8},
    },
    "budget": {"monthlyUsd": 1, "alertEmails": ["nobody@example.com"]},
}
"""What a `local` stack needs not say: it creates no cloud resources, so its network, zones,
machines and budget are placeholders that only keep the shared validation meaningful. The counts
are the seed's members, all on the one engine.
"""
