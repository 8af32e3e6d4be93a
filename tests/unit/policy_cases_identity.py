"""Cases of the identity rules: encryption with the stack's own rotating key (followed through the
property the key is named in), a machine's role from the group it is attached to, a Swarm
service's kind from what it runs, and "open to the internet" as the union of the ranges.
Each case holds the evasion a change could try (a copied tag, a renamed service, a split range).
"""

from __future__ import annotations

import json
from typing import Any

from tests.unit.policy_cases import APP, BALANCER, BASTION, GROUPS, IMAGES, KEY, MANAGER, NETWORKS, WORKER, Case, ingress, res, swarm_service

ROTATING = res("aws:kms/key:Key", "stack-key", {"enableKeyRotation": True, "policy": json.dumps({"Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*", "Resource": "*"}]})})
STILL = res("aws:kms/key:Key", "still-key", {"enableKeyRotation": False})
KEYS = [ROTATING, STILL]
GCP_ROTATING = res("gcp:kms/cryptoKey:CryptoKey", "gcp-key", {"rotationPeriod": "7776000s"})
GCP_KEY_NAME = "projects/p/locations/us/keyRings/dpc/cryptoKeys/data"
PASSWORD = res("random:index/randomPassword:RandomPassword", "pw", {"length": 32})
AZURE_ROTATING = res("azure-native:keyvault:Key", "vault-key", {"properties": {"rotationPolicy": {
    "lifetimeActions": [{"action": {"type": "Rotate"}, "trigger": {"timeAfterCreate": "P90D"}}]}}})
AZURE_SET = res("azure-native:compute:DiskEncryptionSet", "des", {"activeKey": {"keyUrl": "https://v/keys/k"}}, deps={"activeKey": [AZURE_ROTATING]})


def keyed(typ: str, name: str, inputs: dict[str, Any], prop: str, key: Any = ROTATING) -> Any:
    """A resource whose `prop` was computed from `key` (None: from nothing of the stack)."""
    return res(typ, name, inputs, deps={prop: [key]} if key is not None else {})


def _volume(key: Any, kms: str = KEY) -> Any:
    return keyed("aws:ebs/volume:Volume", "data", {"encrypted": True, "kmsKeyId": kms}, "kmsKeyId", key)


def _parameter(name: str, key: Any, **inputs: Any) -> Any:
    return keyed("aws:ssm/parameter:Parameter", name, {"name": f"/dpc/{name}", "type": "SecureString", "keyId": KEY, "value": "x", **inputs}, "keyId", key)


def _member(name: str, machine: str = "aws:ec2/instance:Instance", prop: str = "vpcSecurityGroupIds", *groups: Any, **inputs: Any) -> Any:
    """A machine attached to `groups` of the stack by their ids (found through its property dependencies)."""
    return res(machine, name, {prop: [f"sg-{g.name}" for g in groups], **inputs}, deps={prop: list(groups)})


def _copy_of(role: str) -> Any:
    return res("aws:ec2/securityGroup:SecurityGroup", f"{role}-copy-sg", {"tags": {"Role": role}})


def _v6(name: str, target: Any, cidr: str) -> Any:
    return res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", name, {"ipProtocol": "tcp", "fromPort": 6432, "toPort": 6432, "cidrIpv6": cidr},
               deps={"securityGroupId": [target]})


def _firewall(*ranges: str, ports: str = "5432") -> Any:
    return res("gcp:compute/firewall:Firewall", "f", {"sourceRanges": list(ranges), "allows": [{"protocol": "tcp", "ports": [ports]}]})


def _azure_rule(name: str, nsg: Any, **rule: Any) -> Any:
    inputs = {"direction": "Inbound", "access": "Allow", "protocol": "Tcp", "destinationPortRange": "22", "networkSecurityGroupName": "nsg", **rule}
    return res("azure-native:network:SecurityRule", name, inputs, deps={"networkSecurityGroupName": [nsg]})


_WORKER_NSG = res("azure-native:network:NetworkSecurityGroup", "worker-nsg", {})


_ODD_GROUP = res("aws:ec2/securityGroup:SecurityGroup", "odd-sg", {"tags": {"Role": "db"}})
"""A group tagged with a role the model does not have."""

IDENTITY_CASES = [
    Case(
        "encrypted-with-stack-key",
        "aws volume: the stack's rotating key, not an AWS alias, a literal ARN or a still key",
        [*KEYS, _volume(ROTATING)],
        [*KEYS, keyed("aws:ebs/volume:Volume", "ebs-alias", {"encrypted": True, "kmsKeyId": "alias/aws/ebs"}, "kmsKeyId", ROTATING),

         _volume(None, "arn:aws:kms:us-east-1:999999999999:key/other"), res("aws:ebs/volume:Volume", "still", {"encrypted": True, "kmsKeyId": KEY},
                                                                         deps={"kmsKeyId": [STILL]})],
        offenders=3,
    ),
    Case(
        "encrypted-with-stack-key",
        "aws volume: another account's key behind the stack key's dependency",
        [*KEYS, _volume(ROTATING, "arn:aws:kms:us-east-1:123456789012:key/1234")],
        [*KEYS, _volume(ROTATING, "arn:aws:kms:us-east-1:999999999999:key/x")],
        preview_offenders=0,  # computed from the stack key, the ARN is unknown until the key exists: judged at up
    ),
    Case(
        "encrypted-with-stack-key",
        "aws instance disks and launch templates",
        [*KEYS, keyed("aws:ec2/instance:Instance", "node", {"rootBlockDevice": {"encrypted": True, "kmsKeyId": KEY}}, "rootBlockDevice"),
         keyed("aws:ec2/launchTemplate:LaunchTemplate", "t", {"blockDeviceMappings": [{"ebs": {"kmsKeyId": KEY}}]}, "blockDeviceMappings")],
        [*KEYS, keyed("aws:ec2/instance:Instance", "node", {"rootBlockDevice": {"encrypted": True, "kmsKeyId": KEY}}, "rootBlockDevice", None),
         keyed("aws:ec2/launchTemplate:LaunchTemplate", "t", {"blockDeviceMappings": [{"ebs": {"kmsKeyId": "alias/aws/ebs"}}]}, "blockDeviceMappings")],
        offenders=2,
    ),
    Case(
        "encrypted-with-stack-key",
        "aws bucket encryption, parameters, log groups, registries",
        [
            *KEYS,
            keyed("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "sse",
                  {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY}}]}, "rules"),
            _parameter("token", ROTATING),
            res("aws:ssm/parameter:Parameter", "images", {"name": "/dpc/images", "type": "String", "insecureValue": "repo@sha256:0"},
                deps={"insecureValue": [IMAGES["services"]]}),
            keyed("aws:cloudwatch/logGroup:LogGroup", "logs", {"kmsKeyId": KEY, "retentionInDays": 365}, "kmsKeyId"),
            keyed("aws:ecr/repository:Repository", "repo", {"encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": KEY}]},
                  "encryptionConfigurations"),
        ],
        [
            *KEYS,
            keyed("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "sse",
                  {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": "alias/aws/s3"}}]}, "rules"),
            _parameter("token", None, keyId="alias/aws/ssm"),
            PASSWORD,
            res("aws:ssm/parameter:Parameter", "leak", {"name": "/dpc/leak", "type": "String", "insecureValue": "x"}, deps={"insecureValue": [PASSWORD]}),
            res("aws:ssm/parameter:Parameter", "plain", {"name": "/dpc/plain", "type": "String", "value": "x"}),
            keyed("aws:cloudwatch/logGroup:LogGroup", "logs", {"retentionInDays": 365}, "kmsKeyId", None),
            keyed("aws:ecr/repository:Repository", "repo", {"encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": KEY}]},
                  "encryptionConfigurations", STILL),
        ],
        offenders=6,
    ),
    Case(
        "encrypted-with-stack-key",
        "gcp disks (a regional disk's key is kmsKeyName) and buckets",
        [GCP_ROTATING, keyed("gcp:compute/regionDisk:RegionDisk", "rd", {"diskEncryptionKey": {"kmsKeyName": GCP_KEY_NAME}}, "diskEncryptionKey", GCP_ROTATING),
         keyed("gcp:storage/bucket:Bucket", "b", {"encryption": {"defaultKmsKeyName": GCP_KEY_NAME}}, "encryption", GCP_ROTATING),
         keyed("gcp:artifactregistry/repository:Repository", "ar", {"format": "DOCKER", "kmsKeyName": GCP_KEY_NAME}, "kmsKeyName", GCP_ROTATING)],
        [GCP_ROTATING, keyed("gcp:compute/disk:Disk", "d", {"diskEncryptionKey": {"kmsKeySelfLink": GCP_KEY_NAME}}, "diskEncryptionKey", None),
         keyed("gcp:storage/bucket:Bucket", "b", {"encryption": {"defaultKmsKeyName": GCP_KEY_NAME}}, "encryption",
               res("gcp:kms/cryptoKey:CryptoKey", "slow", {"rotationPeriod": "63072000s"}))],
        offenders=2,
    ),
    Case(
        "encrypted-with-stack-key",
        "azure disks through their encryption set, storage accounts",
        [AZURE_ROTATING, AZURE_SET, keyed("azure-native:compute:Disk", "d", {"encryption": {"diskEncryptionSetId": "/des"}}, "encryption", AZURE_SET),
         keyed("azure-native:storage:StorageAccount", "s", {"encryption": {"keyVaultProperties": {"keyName": "k"}}}, "encryption", AZURE_ROTATING)],
        [AZURE_ROTATING, keyed("azure-native:compute:Disk", "d", {"encryption": {"diskEncryptionSetId": "/subscriptions/s/des"}}, "encryption", None),
         keyed("azure-native:containerregistry:Registry", "acr", {"encryption": {"status": "enabled", "keyVaultProperties": {"keyIdentifier": "k"}}},
               "encryption", None),
         keyed("azure-native:storage:StorageAccount", "s", {"encryption": {"keyVaultProperties": {"keyName": "k"}}}, "encryption",
               res("azure-native:keyvault:Key", "fixed", {"properties": {"kty": "RSA"}}))],
        offenders=3,
    ),
    Case(
        "disks-encrypted-with-customer-key",
        "gcp regional disk names its key kmsKeyName",
        [res("gcp:compute/regionDisk:RegionDisk", "rd", {"diskEncryptionKey": {"kmsKeyName": GCP_KEY_NAME}})],
        [res("gcp:compute/regionDisk:RegionDisk", "rd", {"diskEncryptionKey": {"kmsKeySelfLink": GCP_KEY_NAME}})],
    ),
    Case(
        "buckets-tls-only",
        "azure accepts TLS 1.3 as a minimum",
        [res("azure-native:storage:StorageAccount", "s", {"enableHttpsTrafficOnly": True, "minimumTlsVersion": "TLS1_3"})],
        [res("azure-native:storage:StorageAccount", "s", {"enableHttpsTrafficOnly": True, "minimumTlsVersion": "TLS1_1"})],
    ),
    Case(
        "machines-identified-by-their-groups",
        "aws: one role group per machine, no copied role, no literal group, no tag against the group",
        [*GROUPS, _member("w1", "aws:ec2/instance:Instance", "vpcSecurityGroupIds", WORKER, tags={"Role": "worker"}),
         _member("lb", "aws:lb/loadBalancer:LoadBalancer", "securityGroups", BALANCER),
         _member("t", "aws:ec2/launchTemplate:LaunchTemplate", "vpcSecurityGroupIds", APP),
         res("aws:ec2/vpcEndpoint:VpcEndpoint", "s3", {"vpcEndpointType": "Gateway", "serviceName": "com.amazonaws.us-east-1.s3"})],
        [*GROUPS, _copy_of("bastion"),
         _member("two", "aws:ec2/instance:Instance", "vpcSecurityGroupIds", WORKER, BASTION),
         _member("liar", "aws:ec2/instance:Instance", "vpcSecurityGroupIds", WORKER, tags={"Role": "bastion"}),
         res("aws:ec2/instance:Instance", "literal", {"vpcSecurityGroupIds": ["sg-0123456789abcdef0"]}),
         _member("lb-node", "aws:ec2/instance:Instance", "vpcSecurityGroupIds", BALANCER),
         _member("lb", "aws:lb/loadBalancer:LoadBalancer", "securityGroups", MANAGER),
         res("aws:lb/loadBalancer:LoadBalancer", "bare-lb", {"internal": True, "loadBalancerType": "network"}),
         _ODD_GROUP, _member("odd", "aws:ec2/instance:Instance", "vpcSecurityGroupIds", _ODD_GROUP)],
        offenders=8,
    ),
    Case(
        "no-public-ip-on-nodes",
        "aws: Elastic IPs and launch templates by the role they are attached to",
        [*GROUPS, bastion := _member("jump", "aws:ec2/instance:Instance", "vpcSecurityGroupIds", BASTION),
         res("aws:ec2/eip:Eip", "jump-ip", {"domain": "vpc", "instance": "i-1"}, deps={"instance": [bastion]}),
         res("aws:ec2/eip:Eip", "nat-ip", {"domain": "vpc"})],
        [*GROUPS, worker := _member("w", "aws:ec2/instance:Instance", "vpcSecurityGroupIds", WORKER, tags={"Role": "bastion"}),
         res("aws:ec2/eip:Eip", "w-ip", {"domain": "vpc", "instance": "i-1"}, deps={"instance": [worker]}),
         res("aws:ec2/eipAssociation:EipAssociation", "literal", {"instanceId": "i-0123456789abcdef0"}),
         res("aws:ec2/launchTemplate:LaunchTemplate", "t", {"vpcSecurityGroupIds": ["sg-w"], "networkInterfaces": [{"associatePublicIpAddress": "true"}]},
             deps={"vpcSecurityGroupIds": [WORKER]})],
        offenders=3,
    ),
    Case(
        "no-ingress-from-anywhere",
        "aws: halves of the address space in separate rules into one group",
        [*GROUPS, ingress("lo", MANAGER, 5432, cidr="0.0.0.0/1"), ingress("hi", WORKER, 5432, cidr="128.0.0.0/1"),
         ingress("private", MANAGER, 5432, cidr="10.0.0.0/8")],
        [*GROUPS, ingress("lo", MANAGER, 5432, cidr="0.0.0.0/1"), ingress("hi", MANAGER, 5432, cidr="128.0.0.0/1"),
         _v6("v6-lo", APP, "2000::/4"), _v6("v6-hi", APP, "3000::/4")],
        offenders=4,
    ),
    Case(
        "no-ingress-from-anywhere",
        "gcp and azure: ranges that cover public space, Internet and Any",
        [_firewall("10.0.0.0/8", "0.0.0.0/1"), _azure_rule("vnet", _WORKER_NSG, sourceAddressPrefix="VirtualNetwork", destinationPortRange="5432")],
        [_firewall("0.0.0.0/1", "128.0.0.0/1"), _azure_rule("any", _WORKER_NSG, sourceAddressPrefix="Any", destinationPortRange="5432"),
         _azure_rule("halves", _WORKER_NSG, sourceAddressPrefixes=["0.0.0.0/1", "128.0.0.0/1"], destinationPortRange="6379")],
        offenders=3,
    ),
    Case(
        "services-only-on-their-overlay-networks",
        "docker: a service is what it runs, not what it is called",
        [*NETWORKS.values(), *IMAGES.values(), swarm_service("db-2", "patroni-2", "coordinator-net", "data-net")],
        [*NETWORKS.values(), *IMAGES.values(),
         swarm_service("pgbouncer", "grafana", "app-net", "data-net"),
         swarm_service("patroni-9", "prometheus", "data-net"),
         swarm_service("etcd-1", "etcd-1", "coordinator-net", commands=["sh"]),
         res("docker:index/service:Service", "redis", {"name": "redis", "taskSpec": {"containerSpec": {"image": "redis:7", "args": ["redis-server",
             "/etc/dpc/redis.conf"]}, "networksAdvanceds": [{"id": "x"}]}}, deps={"taskSpec": [NETWORKS["data-net"]]})],
        offenders=4,
    ),
]
