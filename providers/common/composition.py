"""The composition every cloud shares: settings → cloud-neutral plans → components, in dependency
order (storage, network, swarm, compute, load balancer, budget). A cloud contributes only its
builders and its provider.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_tls as tls

from components.access import DeployAccess, Route, remote_connection
from components.base import Scope, StackContext
from components.budget import BUDGET_ALERTS, Budget, BudgetPlan, BudgetResult
from components.compute import Attachment, Compute, ComputePlan, ComputeResult
from components.database import Registry
from components.load_balancer import LoadBalancer, LoadBalancerPlan, LoadBalancerResult, LoadBalancerTarget
from components.network import Network, NetworkPlan, NetworkResult
from components.readiness import ImagesReady, SwarmReady
from components.registry import ImageList, ImageListPlan, ImageListResult, ImageRegistry, RegistryPlan, RegistryResult
from components.storage import BucketLifecycle, Storage, StoragePlan, StorageResult, VolumePlan
from components.swarm import BASTION_HOST_KEY, Mount, Swarm, SwarmLayout, SwarmPlan, SwarmResult
from dpc.model import FIREWALL_MATRIX, LOAD_BALANCER_HEALTH_CHECK, LOAD_BALANCER_PORT, LOAD_BALANCER_TARGET_ROLE, Role, stack_tags
from dpc.render.backup import OffsiteRepository
from dpc.services import BUILT_IMAGES
from dpc.settings import Settings
from dpc.topology import Topology
from providers.common.database import database_outputs, deploy_database, swarm_provider

FLOW_LOG_RETENTION_DAYS = {"prod": 365, "staging": 90, "dev": 30}


@dataclass(frozen=True)
class CloudBuilders:
    """What one cloud contributes: a builder per component and the provider its resources use."""

    provider: Callable[[Settings, str], pulumi.ProviderResource]
    network: Callable[[Scope, NetworkPlan], NetworkResult]
    storage: Callable[[Scope, StoragePlan], StorageResult]
    swarm: Callable[[Scope, SwarmPlan], SwarmResult]
    compute: Callable[[Scope, ComputePlan], ComputeResult]
    load_balancer: Callable[[Scope, LoadBalancerPlan], LoadBalancerResult]
    budget: Callable[[Scope, BudgetPlan], BudgetResult]
    registry: Callable[[Scope, RegistryPlan], RegistryResult]
    image_list: Callable[[Scope, ImageListPlan], ImageListResult]
    offsite_repository: Callable[[Settings, str], OffsiteRepository]
    """The backup tool's repository in the offsite bucket of that name (the cloud's object store)."""


def network_plan(settings: Settings, key_id: pulumi.Output[str]) -> NetworkPlan:
    """The stack's address ranges and the firewall matrix."""
    net = settings.network
    return NetworkPlan(
        cidr=str(ipaddress.ip_network(net.vpc_cidr)),
        zones=tuple(settings.zones),
        private_cidrs=tuple(net.private_subnet_cidrs),
        public_cidrs=tuple(net.public_subnet_cidrs),
        nat_per_zone=net.nat_gateway_per_zone,
        rules=FIREWALL_MATRIX,
        admin_cidrs=tuple(settings.access.admin_cidrs),
        client_cidrs=tuple(settings.access.client_cidrs),
        flow_log_retention_days=FLOW_LOG_RETENTION_DAYS[settings.environment],
        key_id=key_id,
    )


def hostname_prefix(stack: str) -> str:
    """What every machine's host name (and machine name) of the stack starts with."""
    return f"dpc-{stack}"


def deploy(topology: Topology, stack: str, cloud: CloudBuilders) -> dict[str, pulumi.Output[object]]:
    """Creates the whole platform of one stack; returns the stack outputs."""
    settings = topology.settings
    tags = stack_tags(settings, stack)
    provider = cloud.provider(settings, stack)
    opts = pulumi.ResourceOptions(provider=provider)
    context = StackContext(tags, settings.is_prod, opts)
    prefix = hostname_prefix(stack)
    nodes, bastion, volumes = topology.nodes, topology.bastion, topology.volumes
    lifecycle = BucketLifecycle(
        settings.backup.offsite_infrequent_access_after_days,
        settings.backup.offsite_archive_after_days,
    )
    storage = Storage(f"{stack}-storage", StoragePlan(volumes, lifecycle, settings.backup.offsite_replica_region), cloud.storage, context).result
    network = Network(f"{stack}-network", network_plan(settings, storage.key_id), cloud.network, context).result
    by_node: dict[str, list[VolumePlan]] = {}
    for volume in volumes:
        by_node.setdefault(volume.node, []).append(volume)
    mounts = {
        node: tuple(Mount(storage.volume_ids[v.name], v.mount_point) for v in node_volumes)
        for node, node_volumes in by_node.items()
    }
    images = ImageRegistry(f"{stack}-registry", RegistryPlan(tuple(sorted(BUILT_IMAGES)), storage.key_id), cloud.registry, context).result
    manager_1 = topology.swarm_initialiser
    access = DeployAccess(
        f"{stack}-access",
        [BASTION_HOST_KEY, manager_1.name],
        protect=settings.is_prod,
        opts=pulumi.ResourceOptions(providers=[tls.Provider(f"{stack}-access-tls")]),
    )
    swarm_plan = SwarmPlan(
        layout=SwarmLayout(nodes, prefix, tuple(settings.access.ssh_public_keys), bastion, topology.backup_agent),
        mounts=mounts,
        secrets_key_id=storage.key_id,
        deploy_public_key=access.deploy_public_key,
        host_keys=access.host_keys,
        images_parameter_name=images.image_list_name,
        registry_server=images.server,
    )
    swarm = Swarm(f"{stack}-swarm", swarm_plan, cloud.swarm, context).result
    attachments = {
        node: tuple(Attachment(storage.volume_ids[v.name], slot) for slot, v in enumerate(node_volumes))
        for node, node_volumes in by_node.items()
    }
    compute_plan = ComputePlan(
        nodes=nodes,
        bastion=bastion,
        hostname_prefix=prefix,
        image=settings.image,
        private_subnet_ids=network.private_subnet_ids,
        public_subnet_ids=network.public_subnet_ids,
        firewall_group_ids=network.firewall_group_ids,
        user_data_base64=swarm.user_data_base64,
        bastion_user_data=swarm.bastion_user_data,
        boot_after=network.private_egress,
        backup_agent_node=topology.backup_agent.name,
        attachments=attachments,
        key_id=storage.key_id,
        bootstrap_secret_ids=swarm.bootstrap_secret_ids,
        backup_bucket_name=storage.backup_bucket_name,
        image_repository_ids=tuple(images.repository_ids.values()),
        image_list_id=images.image_list_id,
        host_key_ids={Role.MANAGER: (swarm.host_key_ids[manager_1.name],), Role.BASTION: (swarm.host_key_ids[BASTION_HOST_KEY],)},
        capabilities=topology.capabilities,
        deploy_public_key=access.deploy_public_key,
    )
    compute = Compute(f"{stack}-compute", compute_plan, cloud.compute, context).result
    lb_plan = LoadBalancerPlan(
        internal=not settings.access.client_cidrs,
        port=LOAD_BALANCER_PORT,
        health_check=LOAD_BALANCER_HEALTH_CHECK,
        network=network,
        zones=tuple(settings.zones),
        targets=tuple(
            LoadBalancerTarget(n.name, n.zone, compute.instance_ids[n.name], compute.private_ips[n.name]) for n in topology.of_role(LOAD_BALANCER_TARGET_ROLE)
        ),
        deletion_protection=settings.is_prod,
    )
    endpoint = LoadBalancer(f"{stack}-endpoint", lb_plan, cloud.load_balancer, context).result
    regions = tuple(region for region in (settings.region, settings.backup.offsite_replica_region) if region)
    budget_plan = BudgetPlan(settings.budget.monthly_usd, tuple(settings.budget.alert_emails), BUDGET_ALERTS, regions)
    budget = Budget(f"{stack}-budget", budget_plan, cloud.budget, context).result
    route = Route(compute.private_ips[manager_1.name], manager_1.name, compute.bastion_public_ip, BASTION_HOST_KEY)
    on_manager_1 = remote_connection(access, route)
    commands = pulumi.ResourceOptions(providers=[command.Provider(f"{stack}-command")])
    swarm_ready = SwarmReady(f"{stack}-swarm-ready", on_manager_1, compute.instance_ids, commands)

    def images_ready(references: Sequence[pulumi.Output[str]]) -> pulumi.Resource:
        """Records the pushed images where the nodes pull from, then waits until every node holds them."""
        listed = ImageList(f"{stack}-image-list", ImageListPlan(images.image_list_name, tuple(references)), cloud.image_list, context).result
        return ImagesReady(f"{stack}-images-ready", on_manager_1, references, listed.version, commands)

    database = deploy_database(
        topology,
        stack,
        engine=swarm_provider(stack, access, route, swarm_ready),
        registry=Registry(
            images.server,
            images.username,
            images.password,
            images.repository_urls,
            images_ready=images_ready,
        ),
        offsite=storage.backup_bucket_name.apply(lambda bucket: cloud.offsite_repository(settings, bucket)),
        offsite_credential=storage.offsite_credential,
        placement="cluster",
    )
    return {
        "databaseEndpoint": endpoint.address,
        **database_outputs(database),
        "bastionPublicIp": compute.bastion_public_ip,
        "backupBucket": storage.backup_bucket_name,
        "budget": budget.name,
        "machinesAwaitingReplacement": compute.awaiting_replacement,
        "managerPrivateIps": pulumi.Output.all(*(compute.private_ips[n.name] for n in topology.of_role(Role.MANAGER))).apply(",".join),
    }
