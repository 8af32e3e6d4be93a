"""The database stack on Docker Swarm: the four overlay networks, generated passwords and
certificates delivered as Docker secrets, rendered configuration files as Docker configs, the
project's images, and every service of the seed.

Cloud-agnostic: every cloud composition (and the local stack) uses this component through a
docker provider connected to its Swarm's first manager; a cloud only supplies the registry that
the project's images are pushed to.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

import pulumi
import pulumi_docker as docker
import pulumi_random as random
import pulumi_tls as tls

from components.base import StackContext, component_opts
from dpc.cluster import CA_SECRET, GENERATED_SECRET_LENGTHS, CertificateRequest
from dpc.services import BUILT_IMAGES, ServiceSpec, local_repository
from dpc.swarm_spec import SwarmNetwork, UpdateConfig, content_name, image_reference, secret_name, swarm_network, swarm_service
from dpc.tiers import Tier, TierSpec

SecretRenderer = Callable[[Mapping[str, str]], str]
"""Renders a file that carries secret values, from the generated secrets by name."""

CA_VALIDITY_HOURS = 10 * 365 * 24
CERT_VALIDITY_HOURS = 365 * 24
CERT_EARLY_RENEWAL_HOURS = 30 * 24
"""Certificates are renewed by `pulumi up` in their last 30 days (design §3.1: one year, CA ten)."""


ImageGate = Callable[[Sequence[pulumi.Output[str]]], pulumi.Resource]
"""Given the pushed images' references by digest, records them where the nodes pull from and
returns the resource that completes once every node holds each of them."""


@dataclass(frozen=True)
class Registry:
    """Where the project's images are pushed and the Swarm pulls them from (None: build locally).

    The credentials push the images only. The services carry none: a registry token stored with a
    service expires (an ECR token after 12 hours, and a rescheduled task then cannot pull) and a
    new one in every run shows a change on every service. The nodes pull with their own identity
    instead, and `images_ready` holds every service back until they all have.
    """

    server: pulumi.Input[str]
    username: pulumi.Input[str]
    password: pulumi.Input[str]
    repositories: Mapping[str, pulumi.Input[str]]
    """Repository URL per built image."""
    images_ready: ImageGate


@dataclass(frozen=True)
class DatabasePlan:
    """Everything the stack deploys, cloud-neutral."""

    networks: tuple[TierSpec, ...]
    services: tuple[ServiceSpec, ...]
    certificates: tuple[CertificateRequest, ...]
    configs: Mapping[str, pulumi.Input[str]]
    """Plain rendered files by name: no secret in any of them (some wait on a cloud value, such as
    the offsite bucket's name)."""
    secret_files: Mapping[str, SecretRenderer]
    """Rendered files that carry secret values."""
    image_tags: Mapping[str, str]
    """Tag of each project image: a digest of its build context, so a change rolls its services."""
    registry: Registry | None
    given_secrets: Mapping[str, pulumi.Output[str]]
    """Secrets the stack's settings supply rather than the program generates (the alert webhook's
    token), by secret name."""


@dataclass(frozen=True)
class DatabaseResult:
    """What callers need: the generated secrets that operators use, marked secret."""

    superuser_password: pulumi.Output[str]
    app_user_password: pulumi.Output[str]
    grafana_admin_password: pulumi.Output[str]
    ca_certificate: pulumi.Output[str]


@dataclass(frozen=True)
class DockerObject:
    """A Docker secret or config as a service references it: by id, and by name."""

    id: pulumi.Output[str]
    name: pulumi.Output[str]


def _slug(name: str) -> str:
    """A file's name as part of a resource name."""
    return name.replace("_", "-").replace(".", "-")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class DatabaseStack(pulumi.ComponentResource):
    """The seed's services on the Swarm, with their networks, secrets and configs."""

    def __init__(self, name: str, plan: DatabasePlan, context: StackContext, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dpc:database:DatabaseStack", name, None, component_opts(name, context, opts))
        self._base_name = name
        self._stack_plan = plan
        self._protect_state = context.protect_state
        networks = {spec.tier: self._network(swarm_network(spec)) for spec in plan.networks}
        secrets = self._passwords() | self._certificates() | dict(plan.given_secrets)
        objects = self._secret_objects(secrets) | self._config_objects()
        images = self._images()
        ready = plan.registry.images_ready(list(images.values())) if plan.registry else None
        services: dict[str, docker.Service] = {}
        for spec in plan.services:
            after = services.get(spec.after) if spec.after else None
            waits_for = [resource for resource in (after, ready) if resource is not None]
            services[spec.name] = self._service(spec, networks, objects, images, waits_for)
        self.result = DatabaseResult(
            superuser_password=pulumi.Output.secret(secrets["postgres_superuser_password"]),
            app_user_password=pulumi.Output.secret(secrets["app_user_password"]),
            grafana_admin_password=pulumi.Output.secret(secrets["grafana_admin_password"]),
            ca_certificate=secrets[CA_SECRET],
        )
        self.register_outputs({"superuserPassword": self.result.superuser_password, "caCertificate": self.result.ca_certificate})

    def _opts(
        self, *, protect: bool = False, depends_on: list[pulumi.Resource] | None = None, replace_on_changes: list[str] | None = None
    ) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, protect=protect, depends_on=depends_on, replace_on_changes=replace_on_changes)

    def _child(self, suffix: str) -> str:
        return f"{self._base_name}-{suffix}"

    def _network(self, network: SwarmNetwork) -> docker.Network:
        """The overlay network as dpc/swarm_spec.py decides it, renamed into pulumi-docker's arguments."""
        return docker.Network(
            self._child(network.name),
            name=network.name,
            driver=network.driver,
            attachable=network.attachable,
            options=dict(network.options),
            ipam_configs=[docker.NetworkIpamConfigArgs(subnet=network.subnet)],
            labels=[docker.NetworkLabelArgs(label=key, value=value) for key, value in network.labels],
            opts=self._opts(),
        )

    def _passwords(self) -> dict[str, pulumi.Output[str]]:
        """Generated passwords (design §3.2); only letters and digits, so that no config format needs quoting."""
        return {
            name: random.RandomPassword(
                self._child(name.replace("_", "-")), length=length, special=False, opts=self._opts(protect=self._protect_state)
            ).result
            for name, length in sorted(GENERATED_SECRET_LENGTHS.items())
        }

    def _certificates(self) -> dict[str, pulumi.Output[str]]:
        """The cluster CA, and a certificate signed by it for every member and service."""
        ca_key = tls.PrivateKey(self._child("ca-key"), algorithm="ECDSA", ecdsa_curve="P384", opts=self._opts(protect=self._protect_state))
        ca = tls.SelfSignedCert(
            self._child("ca"),
            private_key_pem=ca_key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(common_name="PostgreSQL-CA", organization="dpc"),
            is_ca_certificate=True,
            validity_period_hours=CA_VALIDITY_HOURS,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=self._opts(protect=self._protect_state),
        )
        secrets: dict[str, pulumi.Output[str]] = {CA_SECRET: ca.cert_pem}
        for request in self._stack_plan.certificates:
            key = tls.PrivateKey(self._child(f"{request.name}-key"), algorithm="ECDSA", ecdsa_curve="P256", opts=self._opts())
            csr = tls.CertRequest(
                self._child(f"{request.name}-csr"),
                private_key_pem=key.private_key_pem,
                subject=tls.CertRequestSubjectArgs(common_name=request.common_name, organization="dpc"),
                dns_names=list(request.dns_names),
                ip_addresses=list(request.ip_addresses),
                opts=self._opts(),
            )
            uses = {"server": ["server_auth"], "client": ["client_auth"], "server-and-client": ["server_auth", "client_auth"]}[request.usage]
            cert = tls.LocallySignedCert(
                self._child(f"{request.name}-cert"),
                cert_request_pem=csr.cert_request_pem,
                ca_private_key_pem=ca_key.private_key_pem,
                ca_cert_pem=ca.cert_pem,
                validity_period_hours=CERT_VALIDITY_HOURS,
                early_renewal_hours=CERT_EARLY_RENEWAL_HOURS,
                allowed_uses=["digital_signature", "key_encipherment", *uses],
                opts=self._opts(),
            )
            secrets[request.cert_secret] = cert.cert_pem
            secrets[request.key_secret] = key.private_key_pem
        return secrets

    def _secret_objects(self, values: dict[str, pulumi.Output[str]]) -> dict[str, DockerObject]:
        """Docker secrets: every generated value, and every rendered file that carries one."""
        contents: dict[str, pulumi.Output[str]] = dict(values)
        everything = pulumi.Output.all(**values)
        for name, render in sorted(self._stack_plan.secret_files.items()):
            contents[name] = everything.apply(lambda resolved, render=render: render(resolved))
        naming_key = random.RandomPassword(
            self._child("secret-naming-key"), length=32, special=False, opts=self._opts(protect=self._protect_state)
        ).result
        objects: dict[str, DockerObject] = {}
        for name, content in sorted(contents.items()):
            secret = pulumi.Output.secret(content)
            keyed_name = pulumi.Output.all(naming_key, secret).apply(lambda args, name=name: secret_name(name, args[1], args[0]))
            created = docker.Secret(
                self._child(f"secret-{_slug(name)}"),
                name=pulumi.Output.unsecret(keyed_name),
                data=secret.apply(_b64),
                opts=self._opts(replace_on_changes=["data"]),
            )
            objects[name] = DockerObject(created.id, created.name)
        return objects

    def _config_objects(self) -> dict[str, DockerObject]:
        """Docker configs: the rendered plain files."""
        objects: dict[str, DockerObject] = {}
        for name, content in sorted(self._stack_plan.configs.items()):
            text = pulumi.Output.from_input(content)
            created = docker.ServiceConfig(
                self._child(f"config-{_slug(name)}"),
                name=text.apply(lambda rendered, name=name: content_name(name, rendered)),
                data=text.apply(_b64),
                opts=self._opts(replace_on_changes=["data"]),
            )
            objects[name] = DockerObject(created.id, created.name)
        return objects

    def _images(self) -> dict[str, pulumi.Output[str]]:
        """The project's images, built from images/ and pushed to the registry when there is one;
        services run a pushed image by digest, which a node that holds it never pulls again (the
        readiness gate's global jobs rely on that), and a rebuilt image changes.
        """
        registry = self._stack_plan.registry
        images: dict[str, pulumi.Output[str]] = {}
        for key, context in sorted(BUILT_IMAGES.items()):
            repository = registry.repositories[key] if registry else local_repository(key)
            image = docker.Image(
                self._child(f"image-{key}"),
                image_name=pulumi.Output.concat(repository, ":", self._stack_plan.image_tags[key]),
                build=docker.DockerBuildArgs(context=context, platform="linux/amd64"),
                registry=docker.RegistryArgs(server=registry.server, username=registry.username, password=registry.password) if registry else None,
                skip_push=registry is None,
                opts=self._opts(),
            )
            images[key] = image.repo_digest if registry else image.image_name
        return images

    def _service(
        self,
        spec: ServiceSpec,
        networks: Mapping[Tier, docker.Network],
        objects: Mapping[str, DockerObject],
        images: Mapping[str, pulumi.Output[str]],
        waits_for: Sequence[pulumi.Resource],
    ) -> docker.Service:
        """The service as dpc/swarm_spec.py decides it, renamed into pulumi-docker's arguments."""
        service = swarm_service(spec, self._stack_plan.configs)
        container = docker.ServiceTaskSpecContainerSpecArgs(
            image=image_reference(service, images),
            args=list(service.args) or None,
            env=dict(service.env) or None,
            user=service.user,
            secrets=[
                docker.ServiceTaskSpecContainerSpecSecretArgs(
                    secret_id=objects[f.name].id, secret_name=objects[f.name].name, file_name=f.target,
                    file_uid=f.uid, file_gid=f.gid, file_mode=f.mode,
                )
                for f in service.secrets
            ],
            configs=[
                docker.ServiceTaskSpecContainerSpecConfigArgs(
                    config_id=objects[f.name].id, config_name=objects[f.name].name, file_name=f.target,
                    file_uid=f.uid, file_gid=f.gid, file_mode=f.mode,
                )
                for f in service.configs
            ],
            mounts=[
                docker.ServiceTaskSpecContainerSpecMountArgs(type=m.type, source=m.source, target=m.target, read_only=m.read_only)
                for m in service.mounts
            ],
            stop_grace_period=_duration(service.stop_grace_seconds),
        )
        limits, reservations, restart = service.limits, service.reservations, service.restart
        return docker.Service(
            self._child(service.name),
            name=service.name,
            task_spec=docker.ServiceTaskSpecArgs(
                container_spec=container,
                networks_advanceds=[docker.ServiceTaskSpecNetworksAdvancedArgs(id=networks[tier].id) for tier in service.networks],
                placement=docker.ServiceTaskSpecPlacementArgs(
                    constraints=list(service.constraints) or None, max_replicas=service.max_replicas_per_node
                ),
                resources=docker.ServiceTaskSpecResourcesArgs(
                    limits=docker.ServiceTaskSpecResourcesLimitsArgs(nano_cpus=limits.nano_cpus, memory_bytes=limits.memory_bytes),
                    reservation=docker.ServiceTaskSpecResourcesReservationArgs(
                        nano_cpus=reservations.nano_cpus, memory_bytes=reservations.memory_bytes
                    ),
                ),
                restart_policy=docker.ServiceTaskSpecRestartPolicyArgs(
                    condition=restart.condition, delay=_duration(restart.delay_seconds), window=_duration(restart.window_seconds)
                ),
            ),
            mode=docker.ServiceModeArgs(global_=True) if service.replicas is None else docker.ServiceModeArgs(
                replicated=docker.ServiceModeReplicatedArgs(replicas=service.replicas)
            ),
            endpoint_spec=docker.ServiceEndpointSpecArgs(
                mode=service.endpoint_mode,
                ports=[
                    docker.ServiceEndpointSpecPortArgs(target_port=p.target, published_port=p.published, protocol=p.protocol, publish_mode=p.publish_mode)
                    for p in service.ports
                ] or None,
            ),
            update_config=docker.ServiceUpdateConfigArgs(**_update_args(service.update)),
            rollback_config=docker.ServiceRollbackConfigArgs(**_update_args(service.rollback)),
            converge_config=docker.ServiceConvergeConfigArgs(
                delay=_duration(service.converge.delay_seconds), timeout=_duration(service.converge.timeout_seconds)
            ) if service.converge else None,
            labels=[docker.ServiceLabelArgs(label=key, value=value) for key, value in service.labels],
            opts=self._opts(depends_on=list(waits_for) or None),
        )


def _duration(seconds: int) -> str:
    """pulumi-docker takes durations as Go duration strings."""
    return f"{seconds}s"


class _UpdateArgs(TypedDict):
    """The arguments pulumi-docker's update and rollback configs share."""

    parallelism: int
    delay: str
    failure_action: str
    monitor: str
    max_failure_ratio: str
    order: str


def _update_args(config: UpdateConfig) -> _UpdateArgs:
    """UpdateConfig renamed (the provider takes the failure ratio as a string)."""
    return {
        "parallelism": config.parallelism,
        "delay": _duration(config.delay_seconds),
        "failure_action": config.failure_action,
        "monitor": _duration(config.monitor_seconds),
        "max_failure_ratio": f"{config.max_failure_ratio:g}",
        "order": config.order,
    }
