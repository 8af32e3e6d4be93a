"""Resources for the policy tests: for every policy, compliant and violating resources of each
cloud's types, written with the camelCase inputs the engine hands the pack.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from dpc.services import BUILT_IMAGES, database_services, placement_of
from dpc.settings import settings_from_config
from dpc.topology import derive
from review.plan import stack_config
from review.policy import PlannedResource, Violation, run_policies

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234"
GCP_KEY = "projects/p/locations/us/keyRings/dpc/cryptoKeys/data"
AZURE_DES = "/subscriptions/s/resourceGroups/dpc/providers/Microsoft.Compute/diskEncryptionSets/dpc"
ADMIN = "203.0.113.0/28"
STACK_CONFIG = {**stack_config("prod")[0], "dpc:access": json.dumps({"adminCidrs": [ADMIN], "clientCidrs": [], "sshPublicKeys": []})}
"""The prod stack's config, with the admin network of these cases: the pack reads `dpc:access`, and
the program's own service list (by which Swarm services are identified) comes from the settings."""
TAGS = {"Environment": "prod", "Service": "postgres", "Owner": "platform-team", "CostCenter": "database-platform"}


def res(typ: str, name: str, inputs: dict[str, Any], *, protect: bool = False, deps: dict[str, list[PlannedResource]] | None = None) -> PlannedResource:
    """A planned resource; `deps` names, per property, the resources it was computed from."""
    return PlannedResource(
        f"urn:pulumi:test::dpc::{typ}::{name}",
        typ,
        name,
        inputs,
        protect=protect,
        property_dependencies={key: [d.urn for d in found] for key, found in (deps or {}).items()},
    )


def violations_of(policy: str, resources: list[PlannedResource], properties: dict[str, Any] | None = None) -> list[Violation]:
    """What one policy, made mandatory and given `properties`, reports on the resources."""
    config = {"all": "disabled", policy: {"enforcementLevel": "mandatory", **(properties or {})}}
    return run_policies(resources, config, STACK_CONFIG)


@dataclass(frozen=True)
class Case:
    """Resources one policy must accept (`good`) and must reject (`bad`)."""

    policy: str
    label: str
    good: list[PlannedResource]
    bad: list[PlannedResource]
    properties: dict[str, Any] | None = None
    offenders: int = 1
    """How many distinct resources the policy must name in its violations of `bad`."""
    preview_offenders: int | None = None
    """How many at a first preview, where fewer can be seen (a value computed from a resource still to
    be made is unknown there); None: as many as at `up`."""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


ACCOUNTS = {role: res("gcp:serviceaccount/account:Account", f"{role}-account", {"accountId": f"dpc-prod-{role}"}) for role in ("bastion", "worker", "app")}
"""The GCP service accounts a machine of each role runs as: its network identity."""


def _gcp_ssh(name: str, **identities: Any) -> PlannedResource:
    """A GCP firewall admitting SSH; service accounts are named by e-mail, found through property dependencies."""
    inputs: dict[str, Any] = {"allows": [{"protocol": "tcp", "ports": ["22"]}]}
    deps: dict[str, list[PlannedResource]] = {}
    for key, value in identities.items():
        accounts = [v for v in value if isinstance(v, PlannedResource)]
        inputs[key] = [f"{a.name}@p.iam.gserviceaccount.com" for a in accounts] or value
        if accounts:
            deps[key] = accounts
    return res("gcp:compute/firewall:Firewall", name, inputs, deps=deps)


def _group(role: str | None) -> PlannedResource:
    return res("aws:ec2/securityGroup:SecurityGroup", f"{role}-sg", {"tags": {"Role": role}} if role else {})


MANAGER, WORKER, APP, BASTION, BALANCER, UNTAGGED = (_group(r) for r in ("manager", "worker", "app", "bastion", "load-balancer", None))
VPC = res("aws:ec2/vpc:Vpc", "vpc", {"cidrBlock": "10.20.0.0/16"})
GROUPS = [MANAGER, WORKER, APP, BASTION, BALANCER, UNTAGGED, VPC]


def ingress(
    name: str, target: PlannedResource, port: int, *, cidr: str | None = None, source: PlannedResource | None = None, protocol: str = "tcp"
) -> PlannedResource:
    """An AWS ingress rule into `target`'s group from a network or another group."""
    inputs: dict[str, Any] = {"ipProtocol": protocol, "fromPort": port, "toPort": port}
    deps = {"securityGroupId": [target]}
    if cidr:
        inputs["cidrIpv4"] = cidr
    if source:
        inputs["referencedSecurityGroupId"] = f"sg-{source.name}"
        deps["referencedSecurityGroupId"] = [source]
    return res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", name, inputs, deps=deps)


def _bucket_with(typ: str, inputs: dict[str, Any], name: str = "backups") -> list[PlannedResource]:
    bucket = res("aws:s3/bucket:Bucket", name, {})
    return [bucket, res(typ, f"{name}-attached", {"bucket": name, **inputs}, deps={"bucket": [bucket]})]


def _tls_policy(effect: str) -> dict[str, Any]:
    statement = {"Effect": effect, "Principal": "*", "Action": "s3:*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    return {"policy": json.dumps({"Version": "2012-10-17", "Statement": [statement]})}


def _sse(algorithm: str) -> dict[str, Any]:
    return {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": algorithm, "kmsMasterKeyId": KEY}}]}


def _public_access(flags: int) -> dict[str, Any]:
    names = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    return {name: index < flags for index, name in enumerate(names)}


def _with_vpc(typ: str, inputs: dict[str, Any]) -> list[PlannedResource]:
    return [VPC, res(typ, f"vpc-{typ.rsplit(':', 1)[-1]}", {"vpcId": "vpc-1", **inputs}, deps={"vpcId": [VPC]})]


def _azure_vnet(with_log: bool) -> list[PlannedResource]:
    network = res("azure-native:network:VirtualNetwork", "vnet", {"tags": TAGS})
    log = res("azure-native:network:FlowLog", "vnet-log", {"targetResourceId": "/vnet"}, deps={"targetResourceId": [network]})
    return [network, log] if with_log else [network]


def _container(name: str, **container: Any) -> PlannedResource:
    """A Swarm service whose container spec has `container` (env, args, commands, healthcheck)."""
    return res("docker:index/service:Service", name, {"name": name, "taskSpec": {"containerSpec": {"image": "patroni:4", **container}}})


def _service(env: dict[str, str], name: str = "patroni") -> PlannedResource:
    return _container(name, env=env)


NETWORKS = {
    name: res("docker:index/network:Network", name, {"name": name}) for name in ("coordinator-net", "data-net", "app-net", "monitoring-net", "shortcut-net")
}
"""The seed's four overlays and one network the seed does not have."""


_PROD_SETTINGS = settings_from_config({key.removeprefix("dpc:"): json.loads(v) if v[:1] in "[{" else v for key, v in stack_config("prod")[0].items()})
PROGRAM_SERVICES = {s.name: s for s in database_services(derive(_PROD_SETTINGS), placement_of(_PROD_SETTINGS))}
"""The prod program's own Swarm services by name: what a planned service must run to be one of them."""
IMAGES = {key: res("docker:index/image:Image", f"image-{key}", {"build": {"context": context}}) for key, context in BUILT_IMAGES.items()}
"""The project's image builds, which a service running a project image depends on."""


def swarm_service(name: str, runs: str, *networks: str, literal_ids: tuple[str, ...] = (), **container: Any) -> PlannedResource:
    """A Swarm service named `name` that runs what the program's service `runs` runs (its image and
    command), attached to the stack's `networks` by id (unknown in a preview, so found through the
    taskSpec's property dependencies) and to `literal_ids` no resource of the stack made.
    """
    spec = PROGRAM_SERVICES[runs]
    built = spec.image in BUILT_IMAGES
    image = f"registry.invalid/{spec.image}@sha256:{'0' * 64}" if built else spec.image
    attachments = [{"id": "[unknown]"} for _ in networks] + [{"id": literal} for literal in literal_ids]
    deps = [NETWORKS[n] for n in networks] + ([IMAGES[spec.image]] if built else [])
    task = {"containerSpec": {"image": image, "args": list(spec.command), **container}, "networksAdvanceds": attachments}
    return res("docker:index/service:Service", name, {"name": name, "taskSpec": task}, deps={"taskSpec": deps})


def _on_networks(name: str, *networks: str, literal_ids: tuple[str, ...] = ()) -> PlannedResource:
    """The program's service `name`, as it is planned, on `networks`."""
    return swarm_service(name, name, *networks, literal_ids=literal_ids)


def _instance(resource_name: str = "node", **inputs: Any) -> PlannedResource:
    return res("aws:ec2/instance:Instance", resource_name, inputs)


def _gcp_instance(resource_name: str = "node", **inputs: Any) -> PlannedResource:
    return res("gcp:compute/instance:Instance", resource_name, inputs)


def _azure_vm(resource_name: str = "node", **inputs: Any) -> PlannedResource:
    return res("azure-native:compute:VirtualMachine", resource_name, inputs)


_SHIELDED = {"enableSecureBoot": True, "enableVtpm": True, "enableIntegrityMonitoring": True}
_NO_PASSWORD = {"linuxConfiguration": {"disablePasswordAuthentication": True}}
_USER_DATA = "#cloud-config\nruncmd:\n  - DPC_JOIN_TOKEN='/dpc/prod-swarm/worker-token'\n  - token=$(secret_get \"$DPC_JOIN_TOKEN\")\n"

CASES = [
    Case(
        "disks-encrypted-with-customer-key",
        "aws volume",
        [res("aws:ebs/volume:Volume", "v", {"encrypted": True, "kmsKeyId": KEY})],
        [res("aws:ebs/volume:Volume", "v", {"encrypted": True})],
    ),
    Case(
        "disks-encrypted-with-customer-key",
        "aws instance",
        [_instance(rootBlockDevice={"encrypted": True, "kmsKeyId": KEY})],
        [_instance(rootBlockDevice={"encrypted": True, "kmsKeyId": KEY}, ebsBlockDevices=[{"deviceName": "/dev/sdf", "encrypted": False}])],
    ),
    Case(
        "disks-encrypted-with-customer-key",
        "gcp disk",
        [res("gcp:compute/disk:Disk", "d", {"diskEncryptionKey": {"kmsKeySelfLink": GCP_KEY}})],
        [res("gcp:compute/regionDisk:RegionDisk", "d", {"size": 10})],
    ),
    Case(
        "disks-encrypted-with-customer-key",
        "gcp instance",
        [_gcp_instance(bootDisk={"kmsKeySelfLink": GCP_KEY}, attachedDisks=[{"source": "d", "kmsKeySelfLink": GCP_KEY}])],
        [_gcp_instance(bootDisk={"kmsKeySelfLink": GCP_KEY}, attachedDisks=[{"source": "d"}])],
    ),
    Case(
        "disks-encrypted-with-customer-key",
        "azure disk",
        [res("azure-native:compute:Disk", "d", {"encryption": {"type": "EncryptionAtRestWithCustomerKey", "diskEncryptionSetId": AZURE_DES}})],
        [res("azure-native:compute:Disk", "d", {"encryption": {"type": "EncryptionAtRestWithPlatformKey"}})],
    ),
    Case(
        "disks-encrypted-with-customer-key",
        "azure vm",
        [_azure_vm(storageProfile={"osDisk": {"managedDisk": {"diskEncryptionSet": {"id": AZURE_DES}}}})],
        [_azure_vm(storageProfile={"osDisk": {"managedDisk": {"diskEncryptionSet": {"id": AZURE_DES}}}, "dataDisks": [{"lun": 0, "managedDisk": {}}]})],
    ),
    Case(
        "buckets-encrypted-with-customer-key",
        "aws",
        _bucket_with("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", _sse("aws:kms")),
        _bucket_with("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", _sse("AES256")),
    ),
    Case(
        "buckets-encrypted-with-customer-key",
        "gcp",
        [res("gcp:storage/bucket:Bucket", "b", {"encryption": {"defaultKmsKeyName": GCP_KEY}})],
        [res("gcp:storage/bucket:Bucket", "b", {"location": "US"})],
    ),
    Case(
        "buckets-encrypted-with-customer-key",
        "azure",
        [res("azure-native:storage:StorageAccount", "s", {"encryption": {"keySource": "Microsoft.Keyvault", "keyVaultProperties": {"keyName": "k"}}})],
        [res("azure-native:storage:StorageAccount", "s", {"encryption": {"keySource": "Microsoft.Storage"}})],
    ),
    Case(
        "buckets-tls-only",
        "aws",
        _bucket_with("aws:s3/bucketPolicy:BucketPolicy", _tls_policy("Deny")),
        _bucket_with("aws:s3/bucketPolicy:BucketPolicy", _tls_policy("Allow")),
    ),
    Case(
        "buckets-tls-only",
        "azure",
        [res("azure-native:storage:StorageAccount", "s", {"enableHttpsTrafficOnly": True, "minimumTlsVersion": "TLS1_2"})],
        [res("azure-native:storage:StorageAccount", "s", {"enableHttpsTrafficOnly": True, "minimumTlsVersion": "TLS1_0"})],
    ),
    Case(
        "buckets-public-access-blocked",
        "aws",
        _bucket_with("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", _public_access(4)),
        _bucket_with("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", _public_access(3)),
    ),
    Case(
        "buckets-public-access-blocked",
        "gcp",
        [res("gcp:storage/bucket:Bucket", "b", {"publicAccessPrevention": "enforced", "uniformBucketLevelAccess": True})],
        [res("gcp:storage/bucket:Bucket", "b", {"publicAccessPrevention": "inherited", "uniformBucketLevelAccess": True})],
    ),
    Case(
        "buckets-public-access-blocked",
        "azure",
        [res("azure-native:storage:StorageAccount", "s", {"allowBlobPublicAccess": False})],
        [res("azure-native:storage:StorageAccount", "s", {"kind": "StorageV2"})],
    ),
    Case(
        "keys-rotated",
        "aws",
        [res("aws:kms/key:Key", "k", {"enableKeyRotation": True}), res("aws:kms/key:Key", "sign", {"customerMasterKeySpec": "ECC_NIST_P256"})],
        [res("aws:kms/key:Key", "k", {"enableKeyRotation": False})],
    ),
    Case(
        "keys-rotated",
        "gcp",
        [res("gcp:kms/cryptoKey:CryptoKey", "k", {"rotationPeriod": "7776000s"})],
        [res("gcp:kms/cryptoKey:CryptoKey", "k", {"rotationPeriod": "63072000s"})],
    ),
    Case(
        "keys-rotated",
        "azure",
        [res("azure-native:keyvault:Key", "k", {"properties": {"rotationPolicy": {"lifetimeActions": [{"action": {"type": "Rotate"},
                                                                                                    "trigger": {"timeAfterCreate": "P90D"}}]}}})],
        [res("azure-native:keyvault:Key", "k", {"properties": {"kty": "RSA"}})],
    ),
    Case(
        "overlay-networks-encrypted",
        "docker",
        [
            res("docker:index/network:Network", "n", {"name": "prod-coordinator-net", "driver": "overlay", "options": {"encrypted": ""}}),
            res("docker:index/network:Network", "app", {"name": "app-net", "driver": "overlay"}),
        ],
        [res("docker:index/network:Network", "n", {"name": "data-net", "driver": "overlay", "attachable": True})],
    ),
    Case("no-ingress-from-anywhere", "aws rule", [ingress("r", MANAGER, 5432, cidr="10.20.0.0/16")], [ingress("r", MANAGER, 5432, cidr="0.0.0.0/0")]),
    Case(
        "no-ingress-from-anywhere",
        "aws rule on an allowed listener port",
        [ingress("r", BALANCER, 443, cidr="0.0.0.0/0")],
        [ingress("r", BALANCER, 5432, cidr="0.0.0.0/0")],
        {"allowedPorts": [443]},
    ),
    Case(
        "no-ingress-from-anywhere",
        "aws legacy rule",
        [
            res(
                "aws:ec2/securityGroupRule:SecurityGroupRule",
                "r",
                {"type": "egress", "protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]},
            )
        ],
        [
            res(
                "aws:ec2/securityGroupRule:SecurityGroupRule",
                "r",
                {"type": "ingress", "protocol": "tcp", "fromPort": 22, "toPort": 22, "ipv6CidrBlocks": ["::/0"]},
            )
        ],
    ),
    Case(
        "no-ingress-from-anywhere",
        "aws inline",
        [res("aws:ec2/securityGroup:SecurityGroup", "g", {"ingress": []})],
        [res("aws:ec2/securityGroup:SecurityGroup", "g", {"ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]})],
    ),
    Case(
        "no-ingress-from-anywhere",
        "gcp",
        [res("gcp:compute/firewall:Firewall", "f", {"sourceRanges": ["10.0.0.0/8"], "allows": [{"protocol": "tcp", "ports": ["5432"]}]})],
        [res("gcp:compute/firewall:Firewall", "f", {"sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "tcp", "ports": ["5000-6000"]}]})],
    ),
    Case(
        "no-ingress-from-anywhere",
        "azure nsg",
        [
            res(
                "azure-native:network:NetworkSecurityGroup",
                "n",
                {
                    "securityRules": [
                        {
                            "name": "pg",
                            "direction": "Inbound",
                            "access": "Allow",
                            "protocol": "Tcp",
                            "sourceAddressPrefix": "VirtualNetwork",
                            "destinationPortRange": "5432",
                        }
                    ]
                },
            )
        ],
        [
            res(
                "azure-native:network:NetworkSecurityGroup",
                "n",
                {
                    "securityRules": [
                        {"name": "pg", "direction": "Inbound", "access": "Allow", "protocol": "Tcp", "sourceAddressPrefix": "*", "destinationPortRange": "5432"}
                    ]
                },
            )
        ],
    ),
    Case(
        "no-ingress-from-anywhere",
        "azure rule",
        [
            res(
                "azure-native:network:SecurityRule",
                "r",
                {"direction": "Inbound", "access": "Deny", "protocol": "*", "sourceAddressPrefix": "Internet", "destinationPortRange": "*"},
            )
        ],
        [
            res(
                "azure-native:network:SecurityRule",
                "r",
                {"direction": "Inbound", "access": "Allow", "protocol": "Tcp", "sourceAddressPrefixes": ["Internet"], "destinationPortRanges": ["22"]},
            )
        ],
    ),
    Case(
        "ports-only-from-firewall-matrix",
        "aws",
        [
            *GROUPS,
            ingress("pg", WORKER, 5432, source=APP),
            ingress("lb", MANAGER, 5432, source=BALANCER),
            ingress("ssh", BASTION, 22, cidr=ADMIN),
            ingress("pool", APP, 6432, cidr="10.20.0.0/16"),
            ingress("esp", WORKER, 0, source=MANAGER, protocol="50"),
        ],
        [
            *GROUPS,
            ingress("pg", WORKER, 5432, source=BASTION),
            ingress("etcd", MANAGER, 2379, cidr="10.20.0.0/16"),
            ingress("x", UNTAGGED, 5432, source=APP),
            ingress("all", WORKER, 0, source=MANAGER, protocol="-1"),
        ],
        offenders=4,
    ),
    Case(
        "ssh-only-from-admins-to-bastion",
        "aws",
        [*GROUPS, ingress("in", BASTION, 22, cidr=ADMIN), ingress("hop", WORKER, 22, source=BASTION)],
        [*GROUPS, ingress("in", WORKER, 22, cidr=ADMIN), ingress("wide", BASTION, 22, cidr="198.51.100.0/24"), ingress("hop", MANAGER, 22, source=APP)],
        offenders=3,
    ),
    Case(
        "ssh-only-from-admins-to-bastion",
        "gcp",
        [*ACCOUNTS.values(), _gcp_ssh("in", sourceRanges=[ADMIN], targetServiceAccounts=[ACCOUNTS["bastion"]]),
         _gcp_ssh("hop", sourceServiceAccounts=[ACCOUNTS["bastion"]], targetServiceAccounts=[ACCOUNTS["worker"]]),
         _gcp_ssh("by-tag", sourceTags=["bastion"], targetTags=["worker"])],
        [*ACCOUNTS.values(),
         res("gcp:compute/firewall:Firewall", "tags", {"sourceTags": ["app"], "targetTags": ["worker"], "allows": [{"protocol": "tcp"}]}),
         _gcp_ssh("from-app", sourceServiceAccounts=[ACCOUNTS["app"]], targetServiceAccounts=[ACCOUNTS["worker"]]),
         _gcp_ssh("to-worker", sourceRanges=[ADMIN], targetServiceAccounts=[ACCOUNTS["worker"]]),
         res("gcp:compute/firewall:Firewall", "literal", {"sourceServiceAccounts": ["bastion@elsewhere.iam.gserviceaccount.com"],
                                                          "allows": [{"protocol": "tcp", "ports": ["22"]}]}),
         res("gcp:compute/firewall:Firewall", "no-source", {"targetTags": ["bastion"], "allows": [{"protocol": "tcp", "ports": ["22"]}]})],
        offenders=5,
    ),
    Case(
        "no-public-ip-on-nodes",
        "aws instance",
        [*GROUPS, res("aws:ec2/instance:Instance", "node", {"associatePublicIpAddress": True, "vpcSecurityGroupIds": ["sg-1"]},
                      deps={"vpcSecurityGroupIds": [BASTION]})],
        [*GROUPS, res("aws:ec2/instance:Instance", "node", {"associatePublicIpAddress": True, "tags": {"Role": "bastion"}, "vpcSecurityGroupIds": ["sg-1"]},
                      deps={"vpcSecurityGroupIds": [WORKER]})],
    ),
    Case(
        "no-public-ip-on-nodes",
        "aws subnet",
        [res("aws:ec2/subnet:Subnet", "s", {"mapPublicIpOnLaunch": False})],
        [res("aws:ec2/subnet:Subnet", "s", {"mapPublicIpOnLaunch": True})],
    ),
    Case(
        "no-public-ip-on-nodes",
        "gcp",
        [_gcp_instance(labels={"role": "worker"}, networkInterfaces=[{"subnetwork": "s"}])],
        [_gcp_instance(labels={"role": "worker"}, networkInterfaces=[{"subnetwork": "s", "accessConfigs": [{}]}])],
    ),
    Case(
        "no-public-ip-on-nodes",
        "azure",
        [res("azure-native:network:NetworkInterface", "n", {"tags": {"Role": "app"}, "ipConfigurations": [{"name": "ip"}]})],
        [res("azure-native:network:NetworkInterface", "n", {"tags": {"Role": "app"}, "ipConfigurations": [{"name": "ip", "publicIPAddress": {"id": "/pip"}}]})],
    ),
    Case(
        "default-security-group-closed",
        "aws",
        _with_vpc("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", {"ingress": [], "egress": []}),
        [VPC, res("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "d", {"ingress": [{"protocol": "-1", "self": True}]})],
        offenders=2,
    ),
    Case(
        "default-security-group-closed",
        "gcp",
        [res("gcp:compute/network:Network", "n", {"autoCreateSubnetworks": False})],
        [res("gcp:compute/network:Network", "n", {"name": "dpc"})],
    ),
    Case("flow-logs-on", "aws", _with_vpc("aws:ec2/flowLog:FlowLog", {"trafficType": "ALL"}), _with_vpc("aws:ec2/flowLog:FlowLog", {"trafficType": "REJECT"})),
    Case(
        "flow-logs-on",
        "gcp",
        [res("gcp:compute/subnetwork:Subnetwork", "s", {"logConfig": {"aggregationInterval": "INTERVAL_5_SEC"}})],
        [res("gcp:compute/subnetwork:Subnetwork", "s", {"ipCidrRange": "10.0.0.0/20"})],
    ),
    Case("flow-logs-on", "azure", _azure_vnet(with_log=True), _azure_vnet(with_log=False)),
    Case(
        "services-only-on-their-overlay-networks",
        "docker",
        [
            *NETWORKS.values(),
            *IMAGES.values(),
            _on_networks("etcd-1", "coordinator-net", "monitoring-net"),
            _on_networks("patroni-2", "coordinator-net", "data-net", "monitoring-net"),
            _on_networks("redis-exporter", "app-net", "monitoring-net"),
            _on_networks("postgres-exporter-3", "data-net", "monitoring-net"),
            _on_networks("backup", "data-net"),
        ],
        [
            *NETWORKS.values(),
            *IMAGES.values(),
            _on_networks("grafana", "monitoring-net", "data-net"),
            _on_networks("pgbouncer", "app-net", "coordinator-net"),
            _on_networks("node-exporter", "monitoring-net", literal_ids=("host",)),
            _on_networks("redis-exporter", "data-net"),
            _on_networks("etcd-2", "coordinator-net", "shortcut-net"),
        ],
        offenders=5,
    ),
    Case(
        "no-secret-in-service-environment",
        "docker",
        [
            _service(
                {"POSTGRES_PASSWORD_FILE": "/run/secrets/pg", "PATRONI_POSTGRESQL_PGPASS": "/tmp/pgpass", "ETCD_INITIAL_CLUSTER_TOKEN": "dpc", "PGPORT": "5432"}
            )
        ],
        [
            _service({"POSTGRES_PASSWORD": "hunter2"}),
            _service({"DATABASE_URL": "postgres://app:hunter2@db/app"}, "app"),
            _service({"REDIS_URL": "rediss://:hunter2@redis:6379/0"}, "redis-exporter"),
        ],
        offenders=3,
    ),
    Case(
        "no-secret-in-service-environment",
        "docker arguments",
        [
            _container("etcd-1", args=["etcd", "--config-file", "/etc/dpc/etcd.yml", "--initial-cluster-token", "dpc"]),
            _container("pgbouncer", args=["sh", "-c", "ulimit -n 3586 && exec pgbouncer /etc/dpc/pgbouncer.ini"]),
            _container("postgres-exporter-1", commands=["prometheus-postgres-exporter"], args=["--web.listen-address=:9187"]),
            _container("redis", args=["redis-server", "/etc/dpc/redis.conf", "--masterauth-file", "/run/secrets/redis"],
                       healthcheck={"tests": ["CMD", "redis-cli", "-p", "6379", "--no-auth-warning", "ping"]}),
        ],
        [
            _container("redis", args=["redis-server", "/etc/dpc/redis.conf", "--requirepass", "hunter2"]),
            _container("app", args=["app", "--password=hunter2"]),
            _container("backup", commands=["sh", "-c", "PGPASSWORD=hunter2 exec backup-agent"]),
            _container("redis-check", healthcheck={"tests": ["CMD", "redis-cli", "-a", "hunter2", "ping"]}),
            _container("mysql", args=["mysql", "-p", "hunter2"]),
            _container("grafana", args=["grafana", "--admin-token", "[secret]"]),
        ],
        offenders=6,
    ),
    Case(
        "no-secret-in-rendered-config",
        "docker config",
        [res("docker:index/serviceConfig:ServiceConfig", "c", {"data": _b64("[pgbouncer]\nauth_file = /run/secrets/userlist\nlisten_port = 6432\n")})],
        [
            res("docker:index/serviceConfig:ServiceConfig", "c", {"data": _b64("postgresql:\n  authentication:\n    superuser:\n      password: hunter2\n")}),
            res("docker:index/serviceConfig:ServiceConfig", "raw", {"dataRaw": "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"}),
        ],
        offenders=2,
    ),
    Case("no-secret-in-rendered-config", "aws user data", [_instance(userData=_USER_DATA)], [_instance(userData=_USER_DATA + "JOIN_TOKEN=SWMTKN-1-abc\n")]),
    Case(
        "no-secret-in-rendered-config",
        "aws launch template",
        [res("aws:ec2/launchTemplate:LaunchTemplate", "t", {"userData": _b64(_USER_DATA)})],
        [res("aws:ec2/launchTemplate:LaunchTemplate", "t", {"userData": _b64("export AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP\n")})],
    ),
    Case(
        "no-secret-in-rendered-config",
        "gcp metadata",
        [_gcp_instance(metadata={"startup-script": _USER_DATA})],
        [_gcp_instance(metadataStartupScript="export DB_PASSWORD=hunter2\n")],
    ),
    Case(
        "no-secret-in-rendered-config",
        "azure custom data",
        [_azure_vm(osProfile={"customData": _b64(_USER_DATA)})],
        [_azure_vm(osProfile={"customData": _b64("redis_password: hunter2\n")})],
    ),
    Case(
        "required-tags",
        "aws",
        [
            res("aws:ebs/volume:Volume", "v", {"tags": TAGS}),
            res("aws:ec2/route:Route", "r", {"routeTableId": "rtb-1"}),
            res("docker:index/network:Network", "n", {"name": "app-net"}),
        ],
        [res("aws:ebs/volume:Volume", "v", {"tags": {**TAGS, "Owner": ""}}), res("aws:kms/key:Key", "k", {"description": "no tags"})],
        offenders=2,
    ),
    Case(
        "required-tags",
        "gcp",
        [res("gcp:compute/disk:Disk", "d", {"labels": {"environment": "prod", "service": "pg", "owner": "p", "cost_center": "db"}})],
        [res("gcp:compute/disk:Disk", "d", {"labels": TAGS})],
    ),
    Case("required-tags", "azure", [res("azure-native:compute:Disk", "d", {"tags": TAGS})], [res("azure-native:compute:Disk", "d", {"diskSizeGB": 10})]),
    Case(
        "required-tags",
        "configured keys",
        [res("aws:ebs/volume:Volume", "v", {"tags": {"Team": "db"}})],
        [res("aws:ebs/volume:Volume", "v", {"tags": TAGS})],
        {"requiredKeys": ["Team"]},
    ),
    Case(
        "stateful-resources-protected",
        "aws",
        [res("aws:ebs/volume:Volume", "v", {}, protect=True), res("aws:ec2/vpc:Vpc", "n", {})],
        [res("aws:s3/bucket:Bucket", "b", {})],
    ),
    Case("stateful-resources-protected", "gcp", [res("gcp:storage/bucket:Bucket", "b", {}, protect=True)], [res("gcp:kms/cryptoKey:CryptoKey", "k", {})]),
    Case("stateful-resources-protected", "azure", [res("azure-native:keyvault:Vault", "v", {}, protect=True)], [res("azure-native:compute:Disk", "d", {})]),
    Case("aws-imdsv2-required", "instance", [_instance(metadataOptions={"httpTokens": "required"})], [_instance(metadataOptions={"httpTokens": "optional"})]),
    Case(
        "aws-imdsv2-required",
        "launch template",
        [res("aws:ec2/launchTemplate:LaunchTemplate", "t", {"metadataOptions": {"httpTokens": "required"}})],
        [res("aws:ec2/launchTemplate:LaunchTemplate", "t", {"imageId": "ami-1"})],
    ),
    Case(
        "gcp-shielded-vm",
        "gcp",
        [_gcp_instance(shieldedInstanceConfig=_SHIELDED)],
        [_gcp_instance(shieldedInstanceConfig={**_SHIELDED, "enableSecureBoot": False})],
    ),
    Case("gcp-os-login", "gcp", [_gcp_instance(metadata={"enable-oslogin": "TRUE"})], [_gcp_instance(metadata={"ssh-keys": "admin:ssh-ed25519 AAAA"})]),
    Case(
        "gcp-no-default-service-account",
        "gcp",
        [_gcp_instance(serviceAccount={"email": "worker@p.iam.gserviceaccount.com"})],
        [_gcp_instance(serviceAccount={"email": "123-compute@developer.gserviceaccount.com"}), _gcp_instance("other", serviceAccount={"email": "default"})],
        offenders=2,
    ),
    Case(
        "azure-no-password-authentication",
        "azure",
        [_azure_vm(osProfile=_NO_PASSWORD)],
        [
            _azure_vm(osProfile={"linuxConfiguration": {"disablePasswordAuthentication": False}}),
            _azure_vm("other", osProfile={**_NO_PASSWORD, "adminPassword": "x"}),
        ],
        offenders=2,
    ),
]
