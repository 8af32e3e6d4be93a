"""AWS compute: one EC2 instance per node in its zone's private subnet, IMDSv2 only, encrypted
root volumes, no public address; a least-privilege instance profile per role (the bastion's may
only read its own host key); the bastion in a public subnet; the AMI looked up by its exact,
pinned name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.base import Scope
from components.compute import ComputePlan, ComputeResult, MachineSpec, machines_awaiting
from components.swarm import MANAGER_ADDRESS, MANAGER_TOKEN, WORKER_TOKEN
from dpc.model import SWARM_ROLES, Capability, Node, Role
from providers.aws.arns import account_of
from providers.aws.storage import backup_writer_statements

DEVICE_NAMES = ("/dev/sdf", "/dev/sdg", "/dev/sdh", "/dev/sdi")
"""Attachment slots; on Nitro machines the volume shows up by its id, whatever the slot."""


ON_KEY = frozenset(Capability) - {Capability.PULL_IMAGES}
"""The capabilities whose statements name the stack key: all but pulling images, whose layers ECR
decrypts through its own grant on the key."""


@dataclass(frozen=True)
class Grantable:
    """The ARNs of what a role's statements may name, resolved: this stack's own, nothing else.

    Without the key, the statements on the key are left out: they go into a policy of their own
    (`_instance_profile`), because the key's ARN is unknown until the key exists, while every other
    ARN here is known from names at a stack's first preview, where the policy pack can then judge
    what the roles may do.
    """

    key_arn: str | None
    secrets: dict[str, str]
    bucket_arn: str
    repositories: list[str]
    image_list: str
    host_keys: list[str]
    """The host keys of the role's machines the deployment reaches."""


def _statements(capability: Capability, grantable: Grantable) -> list[dict[str, object]]:
    """The IAM statements that grant one capability, on this stack's parameters, key, bucket and
    repositories only.
    """
    key_arn, secrets = grantable.key_arn, grantable.secrets

    def via_ssm(*actions: str) -> list[dict[str, object]]:
        if key_arn is None:
            return []
        return [{"Effect": "Allow", "Action": list(actions), "Resource": key_arn, "Condition": {"StringLike": {"kms:ViaService": "ssm.*.amazonaws.com"}}}]

    match capability:
        case Capability.READ_MANAGER_JOIN | Capability.READ_WORKER_JOIN:
            token = MANAGER_TOKEN if capability is Capability.READ_MANAGER_JOIN else WORKER_TOKEN
            return [
                {"Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": [secrets[token], secrets[MANAGER_ADDRESS]]},
                *via_ssm("kms:Decrypt"),
            ]
        case Capability.PUBLISH_JOIN:
            return [
                {"Effect": "Allow", "Action": ["ssm:PutParameter"], "Resource": sorted(secrets.values())},
                *via_ssm("kms:Encrypt", "kms:GenerateDataKey"),
            ]
        case Capability.WRITE_BACKUPS:
            return backup_writer_statements(grantable.bucket_arn, key_arn)
        case Capability.PULL_IMAGES:
            # GetAuthorizationToken has no resource type in ECR's authorization reference, so "*"
            # is the only resource it takes; the token grants nothing alone, every pull is checked
            # against the repositories below. No KMS permission: ECR decrypts the layers of a
            # key-encrypted repository through its own grant on the key.
            return [
                {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
                {
                    "Effect": "Allow",
                    "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                    "Resource": sorted(grantable.repositories),
                },
                {"Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": [grantable.image_list]},
            ]
        case Capability.READ_HOST_KEY:
            return [
                {"Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": sorted(grantable.host_keys)},
                *via_ssm("kms:Decrypt"),
            ]


def _document(capabilities: Sequence[Capability], grantable: Grantable, *, key_only: bool = False) -> str:
    """A policy document of the capabilities' statements; with `key_only`, those on the key alone."""
    statements = [s for capability in capabilities for s in _statements(capability, grantable)]
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [s for s in statements if not key_only or s["Resource"] == grantable.key_arn],
    }, sort_keys=True)


def _instance_profile(scope: Scope, plan: ComputePlan, role: Role) -> aws.iam.InstanceProfile:
    name = scope.child(f"{role.value}-identity")
    iam_role = aws.iam.Role(
        name,
        assume_role_policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
        }),
        description=f"dpc {role.value} machines: only what their role needs",
        tags=scope.tags_with(Name=name, Role=role.value),
        opts=scope.opts(),
    )
    capabilities = plan.capabilities[role]
    if capabilities:
        named = pulumi.Output.all(
            pulumi.Output.all(**plan.bootstrap_secret_ids),
            pulumi.Output.all(account_of(scope), plan.backup_bucket_name).apply(lambda a: a[0].bucket(a[1])),
            pulumi.Output.all(*plan.image_repository_ids),
            plan.image_list_id,
            pulumi.Output.all(*plan.host_key_ids.get(role, ())),
        )
        # The policy on the key first: on a stack whose role policy still holds the key's
        # statements, they are granted apart before the update takes them out of it, so a
        # node's WAL archiving or token read never meets a moment without them.
        on_key: list[pulumi.Resource] = []
        if ON_KEY.intersection(capabilities):
            document = pulumi.Output.all(plan.key_id, named).apply(lambda args: _document(capabilities, Grantable(args[0], *args[1]), key_only=True))
            on_key.append(aws.iam.RolePolicy(f"{name}-key", role=iam_role.id, policy=document, opts=scope.opts()))
        aws.iam.RolePolicy(
            name, role=iam_role.id, policy=named.apply(lambda args: _document(capabilities, Grantable(None, *args))), opts=scope.opts(depends_on=on_key)
        )
    return aws.iam.InstanceProfile(name, role=iam_role.name, tags=scope.tags_with(Name=name, Role=role.value), opts=scope.opts())


def _image(scope: Scope, plan: ComputePlan) -> pulumi.Output[str]:
    """The pinned image, by its owner and exact name. Public AMIs are deprecated two years after
    they are made and then drop out of filtered lookups unless deprecated ones are asked for: the
    pin keeps resolving until someone changes it on purpose (README, "The machine image").
    """
    image = aws.ec2.get_ami_output(
        owners=[plan.image.owner],
        filters=[{"name": "name", "values": [plan.image.name]}, {"name": "architecture", "values": ["x86_64"]}],
        include_deprecated=True,
        most_recent=False,
        opts=pulumi.InvokeOutputOptions(parent=scope.component),
    )
    return image.id


def _instance(
    scope: Scope,
    plan: ComputePlan,
    node: Node,
    *,
    ami: pulumi.Output[str],
    subnet_id: pulumi.Input[str],
    group_ids: Sequence[pulumi.Input[str]],
    user_data: pulumi.Input[str] | None = None,
    user_data_base64: pulumi.Input[str] | None = None,
    profile: aws.iam.InstanceProfile,
    public: bool,
    boot_after: Sequence[pulumi.Resource],
) -> aws.ec2.Instance:
    """One machine. Its first boot installs packages, so it waits for its subnet's way out
    (`boot_after`). Changes to its image, machine type or user data never touch a running machine:
    EC2 applies them by stopping the instance, and every node of a role at once would take the etcd
    quorum or the database down; they reach a machine when it is replaced, one node at a time
    (`components.compute.awaiting_replacement` lists the machines waiting for it). A replacement deletes first: the node's volumes and host name pass to
    its successor, which cannot attach a volume still attached to its predecessor.
    """
    name = scope.child(node.name)
    return aws.ec2.Instance(
        name,
        ami=ami,
        instance_type=node.machine_type,
        subnet_id=subnet_id,
        vpc_security_group_ids=list(group_ids),
        associate_public_ip_address=public,
        iam_instance_profile=profile.name,
        user_data_replace_on_change=False,
        metadata_options={
            "http_endpoint": "enabled",
            "http_tokens": "required",
            "http_put_response_hop_limit": _metadata_hops(plan, node),
            "instance_metadata_tags": "disabled",
        },
        root_block_device={
            "volume_type": "gp3",
            "volume_size": node.root_volume_gb,
            "encrypted": True,
            "kms_key_id": plan.key_id,
            "delete_on_termination": True,
            "tags": scope.tags_with(Name=f"{name}-root", Node=node.name),
        },
        monitoring=True,
        tags=scope.tags_with(Name=name, Role=node.role.value, Node=node.name),
        user_data=user_data,
        user_data_base64=user_data_base64,
        opts=scope.opts(ignore_changes=["ami", "instanceType", "userData", "userDataBase64"], depends_on=list(boot_after), delete_before_replace=True),
    )


def _metadata_hops(plan: ComputePlan, node: Node) -> int:
    """How far the instance metadata (and with it the node's role) reaches: the host only (1), or
    also its containers (2) on the one node whose backup agent must act as the node, writing to the
    offsite bucket. Anywhere else a container could read the join tokens with the node's role,
    other managers included when the agent runs on manager-1.
    """
    return 2 if node.name == plan.backup_agent_node else 1


def build_compute(scope: Scope, plan: ComputePlan) -> ComputeResult:
    """Creates the instance profiles, the nodes with their volumes attached, and the bastion."""
    ami = _image(scope, plan)
    profiles = {role: _instance_profile(scope, plan, role) for role in (*SWARM_ROLES, Role.BASTION)}
    instance_ids: dict[str, pulumi.Output[str]] = {}
    private_ips: dict[str, pulumi.Output[str]] = {}
    running: dict[str, pulumi.Output[MachineSpec]] = {}
    for node in plan.nodes:
        instance = _instance(
            scope,
            plan,
            node,
            ami=ami,
            subnet_id=plan.private_subnet_ids[node.zone],
            group_ids=[plan.firewall_group_ids[node.role.value]],
            user_data_base64=plan.user_data_base64[node.name],
            profile=profiles[node.role],
            public=False,
            boot_after=plan.boot_after[node.zone],
        )
        for attachment in plan.attachments.get(node.name, ()):
            aws.ec2.VolumeAttachment(
                scope.child(f"{node.name}-disk{attachment.slot}"),
                instance_id=instance.id,
                volume_id=attachment.volume_id,
                device_name=DEVICE_NAMES[attachment.slot],
                stop_instance_before_detaching=True,
                opts=scope.opts(delete_before_replace=True),
            )
        instance_ids[node.name] = instance.id
        private_ips[node.name] = instance.private_ip
        running[node.name] = pulumi.Output.all(instance.instance_type, instance.ami, instance.user_data_base64).apply(tuple)
    bastion = _instance(
        scope,
        plan,
        plan.bastion,
        ami=ami,
        subnet_id=plan.public_subnet_ids[plan.bastion.zone],
        group_ids=[plan.firewall_group_ids[Role.BASTION.value]],
        user_data=plan.bastion_user_data,
        profile=profiles[Role.BASTION],
        public=True,
        boot_after=(),
    )
    wanted = pulumi.Output.all(ami, pulumi.Output.all(**{node.name: plan.user_data_base64[node.name] for node in plan.nodes})).apply(
        lambda args: {node.name: (node.machine_type, str(args[0]), str(args[1][node.name])) for node in plan.nodes}
    )
    return ComputeResult(
        instance_ids=instance_ids, private_ips=private_ips, bastion_public_ip=bastion.public_ip, awaiting_replacement=machines_awaiting(wanted, running)
    )
