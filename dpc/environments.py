"""Defaults of each environment (design §1.2, §9.1) that every cloud shares: retention, access and
workload figures. What a cloud sells (machine types, volumes, the machine image) are that cloud's
defaults per environment, in its settings profile (`providers/<cloud>/settings.py`), built with
`node_groups` so that every cloud has the same members: staging and dev are smaller and cheaper
than prod but keep 3 etcd and 3 Patroni members, so every environment fails over the same way.

A stack file overrides any of these keys key by key; lists are replaced whole.

The offsite lifecycle (`_BACKUP`): infrequent access after 30 days and archive after 90, the
earliest S3 allows and within what GCS bills; pgBackRest keeps the offsite fulls 7 years (2555
days, design §4.4) and deletes them itself.
"""

from __future__ import annotations

from typing import Literal

Environment = Literal["dev", "staging", "prod"]

DEFAULT_CLOUD = "aws"
"""The cloud of a stack file that names none: stack files written before there was a second cloud."""

_BACKUP = {
    "walRetentionDays": 30,
    "dailyRetentionDays": 7,
    "weeklyRetentionWeeks": 4,
    "monthlyRetentionMonths": 12,
    "offsiteInfrequentAccessAfterDays": 30,
    "offsiteArchiveAfterDays": 90,
    "offsiteExpireAfterDays": 2555,
}

_ACCESS: dict[str, list[str]] = {"adminCidrs": [], "clientCidrs": [], "sshPublicKeys": []}


def node_groups(manager: str, worker: str, app: str, bastion: str, *, backup_count: int, manager_root: int, node_root: int) -> dict[str, object]:
    """The node groups of design §1.1 in a cloud's machine types. Managers keep etcd's data on
    their root volume (design §4.1); other nodes only the OS. The backup node is an app-sized machine.
    """
    return {
        "managers": {"count": 3, "machineType": manager, "rootVolumeGb": manager_root},
        "workers": {"count": 3, "machineType": worker, "rootVolumeGb": node_root},
        "app": {"count": 2, "machineType": app, "rootVolumeGb": node_root},
        "backup": {"count": backup_count, "machineType": app, "rootVolumeGb": node_root},
        "bastion": {"machineType": bastion, "rootVolumeGb": 20},
    }


ENVIRONMENT_DEFAULTS: dict[Environment, dict[str, object]] = {
    "prod": {
        "environment": "prod",
        "backup": _BACKUP,
        "access": _ACCESS,
        "database": {"expectedConcurrentUsers": 500, "expectedTps": 1000},
    },
    "staging": {
        "environment": "staging",
        "backup": _BACKUP | {"dailyRetentionDays": 7, "walRetentionDays": 14, "monthlyRetentionMonths": 3},
        "access": _ACCESS,
        "database": {"expectedConcurrentUsers": 200, "expectedTps": 500},
    },
    "dev": {
        "environment": "dev",
        "backup": _BACKUP | {"walRetentionDays": 7, "dailyRetentionDays": 3, "weeklyRetentionWeeks": 1, "monthlyRetentionMonths": 1},
        "access": _ACCESS,
        "database": {"expectedConcurrentUsers": 50, "expectedTps": 100},
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
    "storage": {"data": {"sizeGb": 50}, "wal": {"sizeGb": 20}, "backup": {"sizeGb": 100}},
    "image": {"owner": "local", "name": "none"},
    "budget": {"monthlyUsd": 1, "alertEmails": ["nobody@example.com"]},
}
"""What a `local` stack needs not say, in every environment: it creates no cloud resources, so its
network, zones, machines, volumes, image and budget are placeholders that only keep the shared
validation meaningful. The counts are the seed's members, all on the one engine.
"""
