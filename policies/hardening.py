"""Host hardening: the machines' own defences. On AWS the instance metadata service answers only
session-token requests (IMDSv2), which closes the SSRF path to a node's credentials; on GCP
machines boot verified (Shielded VM), log in through OS Login and do not run as the project-wide
default service account; on Azure no machine accepts password logins, and machines boot verified
(Trusted Launch) with encryption at host.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pulumi_policy import PolicyConfigSchema, PolicyResource, ResourceValidationArgs, Severity, StackValidationArgs

from dpc.services import ServiceSpec
from policies.common import get, items, judge_each, mapping, of_type, resource_policy, stack_policy
from policies.identity import UNKNOWN, peek, program_services
from policies.segmentation import service_kinds

GCP_INSTANCE = "gcp:compute/instance:Instance"
_SHIELDED_FEATURES = ("enableSecureBoot", "enableVtpm", "enableIntegrityMonitoring")


def _imds_v2(args: ResourceValidationArgs) -> Iterator[str]:
    if get(args.props, "metadataOptions", "httpTokens") != "required":
        yield "the instance metadata service accepts requests without a session token: set metadataOptions.httpTokens to required"


AWS_IMDSV2 = resource_policy(
    "aws-imdsv2-required",
    "AWS machines answer metadata requests only with an IMDSv2 session token.",
    severity=Severity.HIGH,
    remediation='Set metadata_options={"http_tokens": "required", "http_put_response_hop_limit": 1} on the instance or launch template.',
    checks={"aws:ec2/instance:Instance": _imds_v2, "aws:ec2/launchTemplate:LaunchTemplate": _imds_v2},
)


def _shielded(args: ResourceValidationArgs) -> Iterator[str]:
    config = get(args.props, "shieldedInstanceConfig")
    missing = [feature for feature in _SHIELDED_FEATURES if get(config, feature) is not True]
    if missing:
        yield f"shieldedInstanceConfig lacks {', '.join(missing)}"


GCP_SHIELDED_VM = resource_policy(
    "gcp-shielded-vm",
    "GCP machines are Shielded VMs: secure boot, vTPM and integrity monitoring.",
    severity=Severity.MEDIUM,
    remediation="Set shielded_instance_config with enable_secure_boot, enable_vtpm and enable_integrity_monitoring all true (on a Shielded-VM image).",
    checks={GCP_INSTANCE: _shielded},
)


def _os_login(args: ResourceValidationArgs) -> Iterator[str]:
    metadata = mapping(get(args.props, "metadata"))
    if str(metadata.get("enable-oslogin", "")).upper() != "TRUE":
        yield 'metadata enable-oslogin is not "TRUE": SSH keys in metadata would bypass IAM'
    if str(metadata.get("serial-port-enable", "")).upper() in ("TRUE", "1"):
        yield 'metadata serial-port-enable lets anyone with the project\'s console rights log in through the serial console: set it to "FALSE"'


GCP_OS_LOGIN = resource_policy(
    "gcp-os-login",
    "GCP machines log in through OS Login, so that access follows IAM, and keep the interactive serial console off.",
    severity=Severity.MEDIUM,
    remediation='Set metadata {"enable-oslogin": "TRUE", "serial-port-enable": "FALSE"} on the instance.',
    checks={GCP_INSTANCE: _os_login},
)


def _service_account(args: ResourceValidationArgs) -> Iterator[str]:
    email = str(get(args.props, "serviceAccount", "email") or "")
    if email == "default" or email.endswith("-compute@developer.gserviceaccount.com"):
        yield f"the machine runs as the default compute service account ({email}), which has Editor on the project"


GCP_NO_DEFAULT_SERVICE_ACCOUNT = resource_policy(
    "gcp-no-default-service-account",
    "GCP machines run as their role's own service account, never the default compute one.",
    severity=Severity.HIGH,
    remediation="Create a service account per role with only what it needs and set service_account.email to it.",
    checks={GCP_INSTANCE: _service_account},
)


def _no_password(args: ResourceValidationArgs) -> Iterator[str]:
    profile = get(args.props, "osProfile")
    if get(profile, "linuxConfiguration", "disablePasswordAuthentication") is not True:
        yield "password authentication is not disabled: set osProfile.linuxConfiguration.disablePasswordAuthentication to true"
    if get(profile, "adminPassword") is not None:
        yield "osProfile sets an adminPassword: log in with SSH keys only"


AZURE_NO_PASSWORD_AUTH = resource_policy(
    "azure-no-password-authentication",
    "Azure machines accept SSH keys only, never passwords.",
    severity=Severity.HIGH,
    remediation="Set os_profile.linux_configuration.disable_password_authentication to true with ssh public keys, and no admin_password.",
    checks={"azure-native:compute:VirtualMachine": _no_password},
)

def _trusted_launch(args: ResourceValidationArgs) -> Iterator[str]:
    """Azure's counterpart of a Shielded VM: Trusted Launch with secure boot and a vTPM."""
    security = get(args.props, "securityProfile")
    if get(security, "securityType") not in ("TrustedLaunch", "ConfidentialVM"):
        yield "the machine is not a Trusted Launch VM: set securityProfile.securityType TrustedLaunch"
    missing = [feature for feature in ("secureBootEnabled", "vTpmEnabled") if get(security, "uefiSettings", feature) is not True]
    if missing:
        yield f"securityProfile.uefiSettings lacks {', '.join(missing)}"
    if get(security, "encryptionAtHost") is not True:
        yield "the machine's temporary disk and disk caches are not encrypted: set securityProfile.encryptionAtHost to true"


AZURE_TRUSTED_LAUNCH = resource_policy(
    "azure-trusted-launch",
    "Azure machines boot verified (Trusted Launch: secure boot and a vTPM, GCP's Shielded VM) and encrypt at the host what their "
    "managed disks' keys do not cover (the temporary disk, the caches).",
    severity=Severity.MEDIUM,
    remediation="Set security_profile security_type TrustedLaunch, uefi_settings secure_boot_enabled and v_tpm_enabled, encryption_at_host True "
    "(on a Trusted-Launch image and a size that supports both; the subscription registers the EncryptionAtHost feature).",
    checks={"azure-native:compute:VirtualMachine": _trusted_launch},
)


def _hop_limit(machine: PolicyResource) -> Any:
    return peek(machine.props, "metadataOptions", "httpPutResponseHopLimit")


def _hop_limit_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    """Hop limit 1 everywhere but on the documented machine: the node whose backup agent acts as
    the node (providers/aws/compute.py `_metadata_hops`), which may have 2, and only one such node.
    """
    machines = of_type(args, "aws:ec2/instance:Instance", "aws:ec2/launchTemplate:LaunchTemplate")
    allowed = int(args.get_config()["containerMetadataMachines"])  # the engine sends config numbers as floats
    reaching = [m for m in machines if _hop_limit(m) not in (1, None, UNKNOWN)]
    for machine in machines:
        hops = _hop_limit(machine)
        if hops is None:
            yield (f"{machine.name} leaves the metadata hop limit to the image: set metadataOptions.httpPutResponseHopLimit to 1", machine.urn)
        elif hops is not UNKNOWN and hops not in (1, 2):
            yield (f"{machine.name}: metadata hop limit {hops} lets anything behind two network hops read the node's credentials", machine.urn)
    for machine in reaching[allowed:]:
        yield (f"{machine.name}: metadata hop limit {_hop_limit(machine)} lets its containers act as the node; only {allowed} machine "
               f"(the backup agent's) may ({', '.join(m.name for m in reaching)} do)", machine.urn)


IMDS_HOP_LIMIT = stack_policy(
    "aws-imds-hop-limit",
    "The instance metadata service answers the host only (hop limit 1), so that containers cannot take the node's role; the one documented "
    "exception is the node whose backup agent writes the offsite bucket with the node's role (hop limit 2).",
    severity=Severity.HIGH,
    remediation="Set metadata_options http_put_response_hop_limit to 1; only the backup agent's node (providers/aws/compute.py) has 2.",
    check=_hop_limit_violations,
    clouds=("aws",),
    config_schema=PolicyConfigSchema({"containerMetadataMachines": {"type": "integer", "minimum": 0, "default": 1}}),
)

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_IMAGE_BUILDS = ("docker:index/image:Image", "docker:index/registryImage:RegistryImage", "docker-build:index:Image")


def _pinned(service: PolicyResource) -> Iterator[str]:
    """Pinned by digest; or, the documented exception, the content-named tag of a build this stack
    makes and never pushes (the local stack: no registry, so nothing can move it).
    """
    image = peek(service.props, "taskSpec", "containerSpec", "image")
    builds = [d for d in service.property_dependencies.get("taskSpec", []) if d.resource_type in _IMAGE_BUILDS]
    local = any(peek(b.props, "skipPush") is True and peek(b.props, "imageName") == image for b in builds)
    if image is UNKNOWN:
        if not builds:
            yield f"service {service.name} runs an image computed from no build of this stack, which cannot be known pinned"
    elif not _DIGEST.search(str(image)) and not local:
        yield f"service {service.name} runs {image}, a reference a push can move: pin it by digest (@sha256:…)"


def _pinned_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    yield from judge_each(of_type(args, "docker:index/service:Service"), _pinned)


IMAGES_PINNED = stack_policy(
    "images-pinned-by-digest",
    "Every Swarm service runs an image pinned by digest (the project's from its build's digest, vendors' as dpc/services.py pins them).",
    severity=Severity.HIGH,
    remediation="Run the build's repoDigest for the project's images and `name:version@sha256:…` for vendor images (dpc/services.py Image).",
    check=_pinned_violations,
    clouds=("docker",),
)

_SOCKET_PATHS = ("/var/run/docker.sock", "/run/docker.sock")


def _reaches_socket(source: str) -> bool:
    """A bind source that is the Docker socket or a directory that holds it (a read-only mount does
    not stop a process from connecting to a socket in it).
    """
    path = "/" + source.strip("/")
    return any(socket == path or socket.startswith(path.rstrip("/") + "/") for socket in _SOCKET_PATHS)


def _socket_problems(service: PolicyResource, specs: tuple[ServiceSpec, ...] | None, allowed: list[str]) -> Iterator[str]:
    kinds = service_kinds(service, specs or ())
    excepted = bool(kinds) and kinds <= set(allowed)
    for mount in items(get(service.props, "taskSpec", "containerSpec", "mounts")):
        source = peek(mount, "source")
        if get(mount, "type") == "bind" and isinstance(source, str) and _reaches_socket(source) and not excepted:
            yield f"service {service.name} mounts {source}, which holds the Docker socket: root on every node it runs on"


def _socket_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    services = of_type(args, "docker:index/service:Service")
    specs = program_services() if services else ()
    allowed: list[str] = list(args.get_config()["allowedKinds"])
    yield from judge_each(services, lambda service: _socket_problems(service, specs, allowed))


NO_DOCKER_SOCKET = stack_policy(
    "no-docker-socket-in-services",
    "No Swarm service mounts the Docker socket or a directory holding it, except the documented exporters (cAdvisor reads containers "
    "through it; node-exporter reads the host's file systems under /), recognised by what they run, never by their name.",
    severity=Severity.CRITICAL,
    remediation="Remove the bind mount; if an exporter really needs the host, list its kind in this policy's allowedKinds with the reason.",
    check=_socket_violations,
    clouds=("docker",),
    config_schema=PolicyConfigSchema({"allowedKinds": {"type": "array", "items": {"type": "string"}, "default": ["cadvisor", "node-exporter"]}}),
)


def _aws_registry(args: ResourceValidationArgs) -> Iterator[str]:
    if get(args.props, "imageTagMutability") != "IMMUTABLE":
        yield "tags can be moved to other images: set imageTagMutability to IMMUTABLE"
    if get(args.props, "imageScanningConfiguration", "scanOnPush") is not True:
        yield "pushed images are not scanned: set imageScanningConfiguration.scanOnPush to true"


def _gcp_registry(args: ResourceValidationArgs) -> Iterator[str]:
    if get(args.props, "format") in (None, "DOCKER") and get(args.props, "dockerConfig", "immutableTags") is not True:
        yield "tags can be moved to other images: set dockerConfig.immutableTags to true"


def _azure_registry(args: ResourceValidationArgs) -> Iterator[str]:
    if get(args.props, "encryption", "status") != "enabled":
        yield "the registry is not encrypted with a customer key: set encryption.status enabled with the stack's Key Vault key"
    if get(args.props, "adminUserEnabled") is True:
        yield "the registry's admin user is on: a shared password that pushes and pulls every image; set adminUserEnabled to false"
    if get(args.props, "anonymousPullEnabled") is True:
        yield "anyone can pull the registry's images: set anonymousPullEnabled to false"


REGISTRIES_HARDENED = resource_policy(
    "registries-immutable-and-scanned",
    "Image registries keep tags immutable and scan what is pushed (ECR; GCP Artifact Registry immutable tags; Azure registries under a "
    "customer key, without the admin user or anonymous pull).",
    severity=Severity.MEDIUM,
    remediation="ECR: image_tag_mutability IMMUTABLE and scan_on_push; Artifact Registry: docker_config.immutable_tags; ACR: encryption with a "
    "Key Vault key, admin_user_enabled and anonymous_pull_enabled false.",
    checks={
        "aws:ecr/repository:Repository": _aws_registry,
        "gcp:artifactregistry/repository:Repository": _gcp_registry,
        "azure-native:containerregistry:Registry": _azure_registry,
    },
)

POLICIES = [
    IMDS_HOP_LIMIT, IMAGES_PINNED, NO_DOCKER_SOCKET, REGISTRIES_HARDENED, AWS_IMDSV2, GCP_SHIELDED_VM, GCP_OS_LOGIN, GCP_NO_DEFAULT_SERVICE_ACCOUNT,
    AZURE_NO_PASSWORD_AUTH, AZURE_TRUSTED_LAUNCH,
]
