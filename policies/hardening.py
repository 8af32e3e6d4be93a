"""Host hardening: the machines' own defences. On AWS the instance metadata service answers only
session-token requests (IMDSv2), which closes the SSRF path to a node's credentials; on GCP
machines boot verified (Shielded VM), log in through OS Login and do not run as the project-wide
default service account; on Azure no machine accepts password logins.
"""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import ResourceValidationArgs, Severity

from policies.common import get, mapping, resource_policy

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
    if str(mapping(get(args.props, "metadata")).get("enable-oslogin", "")).upper() != "TRUE":
        yield 'metadata enable-oslogin is not "TRUE": SSH keys in metadata would bypass IAM'


GCP_OS_LOGIN = resource_policy(
    "gcp-os-login",
    "GCP machines log in through OS Login, so that access follows IAM.",
    severity=Severity.MEDIUM,
    remediation='Set metadata {"enable-oslogin": "TRUE"} on the instance.',
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

POLICIES = [AWS_IMDSV2, GCP_SHIELDED_VM, GCP_OS_LOGIN, GCP_NO_DEFAULT_SERVICE_ACCOUNT, AZURE_NO_PASSWORD_AUTH]
