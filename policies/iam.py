"""Access: who may use the stack's keys and what its machines' and services' roles may do.

A key policy that lets any principal in (`"Principal": "*"`) hands the data to whoever finds the
key; an IAM policy with `*` actions, `*` resources or an action that grants more rights (writing a
policy, passing any role) lets one compromised node become the account's administrator. The AWS
actions that accept no resource but `*` (AWS's service authorization reference: "Resource types:
none") are the documented exception, listed below with why the program needs each.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, cast

from pulumi_policy import PolicyResource, Severity, StackValidationArgs

from policies.common import get, items, judge_each, of_type, stack_policy
from policies.identity import UNKNOWN, peek, policy_statements

RESOURCELESS_ACTIONS = {
    "ecr:GetAuthorizationToken": "the nodes sign in to the stack's registry; the token is per account, not per repository",
    "logs:DescribeLogGroups": "VPC flow logs look their log group up; the action lists every group and takes no resource",
}
"""Actions AWS authorizes on `*` only, each with the reason the program grants it."""

ESCALATION_ACTIONS = frozenset({
    "iam:attachgrouppolicy", "iam:attachrolepolicy", "iam:attachuserpolicy", "iam:createaccesskey", "iam:createloginprofile",
    "iam:createpolicyversion", "iam:deleterolepermissionsboundary", "iam:passrole", "iam:putgrouppolicy", "iam:putrolepermissionsboundary",
    "iam:putrolepolicy", "iam:putuserpolicy", "iam:setdefaultpolicyversion", "iam:updateassumerolepolicy", "iam:updateloginprofile",
    "iam:addusertogroup", "sts:assumerole", "lambda:updatefunctioncode", "ec2:modifyinstanceattribute", "ssm:sendcommand",
    "ssm:startsession", "kms:putkeypolicy", "kms:creategrant",
})
"""Actions that let a principal grant itself more than its policy says (Rhino Security Labs' AWS
privilege-escalation methods, and the key and instance equivalents)."""

_ADMIN_MANAGED_POLICIES = ("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")
_GCP_BROAD_ROLES = ("roles/owner", "roles/editor", "roles/iam.serviceAccountTokenCreator", "roles/iam.serviceAccountUser", "roles/iam.securityAdmin")
_GCP_PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
_AZURE_BROAD_ROLE_IDS = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
}
"""Azure's built-in roles that can change access or everything (their documented role ids)."""

AWS_POLICY_DOCUMENTS = ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy", "aws:iam/userPolicy:UserPolicy", "aws:iam/groupPolicy:GroupPolicy")
"""The AWS types whose `policy` input is an IAM policy document."""


def _strings(value: Any) -> list[str]:
    return [str(v) for v in cast(list[Any], value)] if isinstance(value, list) else [str(value)] if value is not None else []


def _statement_problems(statement: Any) -> Iterator[str]:
    if get(statement, "Effect") != "Allow":
        return
    label = get(statement, "Sid") or "a statement"
    if get(statement, "NotAction") is not None or get(statement, "NotResource") is not None:
        yield f"{label} allows by NotAction/NotResource, everything but a list"
    actions = _strings(get(statement, "Action"))
    wildcards = [a for a in actions if "*" in a]
    if wildcards:
        yield f"{label} allows wildcard actions {', '.join(wildcards)}"
    escalating = sorted(a for a in actions if a.lower() in ESCALATION_ACTIONS)
    if escalating:
        yield f"{label} allows {', '.join(escalating)}, with which a principal grants itself more"
    if "*" in _strings(get(statement, "Resource")):
        beyond = [a for a in actions if a not in RESOURCELESS_ACTIONS]
        if beyond:
            yield f"{label} allows {', '.join(beyond)} on every resource (*), which these actions do not need"


def _document_problems(resource: PolicyResource) -> Iterator[str]:
    document = get(resource.props, "policy")  # unknown at preview: not judged, and said so
    for statement in policy_statements(document):
        yield from (f"{resource.name}: {problem}" for problem in _statement_problems(statement))


def _role_problems(role: PolicyResource) -> Iterator[str]:
    for inline in items(get(role.props, "inlinePolicies")):
        for statement in policy_statements(peek(inline, "policy")):
            yield from (f"{role.name}, inline policy {get(inline, 'name')}: {problem}" for problem in _statement_problems(statement))
    for arn in items(get(role.props, "managedPolicyArns")):
        if str(arn).rsplit("/", 1)[-1] in _ADMIN_MANAGED_POLICIES:
            yield f"{role.name} has the managed policy {arn}"


def _attachment_problems(attachment: PolicyResource) -> Iterator[str]:
    arn = peek(attachment.props, "policyArn")
    if arn is not UNKNOWN and str(arn).rsplit("/", 1)[-1] in _ADMIN_MANAGED_POLICIES:
        yield f"{attachment.name} attaches {arn}"


_GCP_GRANT = re.compile(r"^gcp:[\w/]+:\w*I[Aa][Mm](Member|Binding)$")
"""The GCP types that grant one role to principals on one resource: every `*IamMember`/`*IAMMember`
(one principal, `member`) and `*IamBinding`/`*IAMBinding` (the role's whole list, `members`) of the
SDK, recognised by their token so that a grant on a resource the program did not use yet is judged too."""
_GCP_PROJECT_GRANTS = ("gcp:projects/iAMMember:IAMMember", "gcp:projects/iAMBinding:IAMBinding")
_GCP_RESOURCE_LEVEL_ROLES = ("roles/secretmanager.", "roles/storage.object", "roles/artifactregistry.", "roles/cloudkms.cryptoKey")
"""Roles that a secret, a bucket, a repository or a key grants on itself: held project-wide, they
reach every secret, bucket, repository or key of the project, those of other stacks too."""


def gcp_members(binding: PolicyResource) -> list[Any]:
    """The principals a GCP grant names: a member's one, a binding's list."""
    if binding.resource_type.endswith("Binding"):
        return items(get(binding.props, "members"))
    return [get(binding.props, "member")]


def _gcp_binding_problems(binding: PolicyResource) -> Iterator[str]:
    role = str(get(binding.props, "role"))
    if role in _GCP_BROAD_ROLES:
        yield f"{binding.name} grants {role}"
    if binding.resource_type in _GCP_PROJECT_GRANTS and role.startswith(_GCP_RESOURCE_LEVEL_ROLES):
        yield f"{binding.name} grants {role} on the whole project: grant it on the one secret, bucket, repository or key"
    members = gcp_members(binding)
    if any(member in _GCP_PUBLIC_MEMBERS for member in members):
        yield f"{binding.name} grants {role} to everyone ({', '.join(m for m in _GCP_PUBLIC_MEMBERS if m in members)})"


_AZURE_WIDE_SCOPE = re.compile(r"/(subscriptions/[^/]+(/resourceGroups/[^/]+)?)?/?|/providers/Microsoft\.Management/managementGroups/[^/]+/?", re.IGNORECASE)
"""Scopes that reach every resource under them: the tenant root, a management group, a subscription,
a resource group (the stack's holds its vault, every secret and key, the registry, the disks)."""


_AZURE_VAULT_SCOPE = re.compile(r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/[^/]+/?", re.IGNORECASE)
"""A whole Key Vault as a scope: a data role there reaches every secret and key of the vault (GCP's
project-wide secretAccessor); the stack grants on the one secret or key."""


def _azure_assignment_problems(assignment: PolicyResource) -> Iterator[str]:
    definition = peek(assignment.props, "roleDefinitionId")
    role_id = str(definition).rsplit("/", 1)[-1].lower() if definition is not UNKNOWN else ""
    if role_id in _AZURE_BROAD_ROLE_IDS:
        yield f"{assignment.name} assigns {_AZURE_BROAD_ROLE_IDS[role_id]}"
    scope = get(assignment.props, "scope")  # unknown at a first preview when computed from the stack's names: not judged, and said so
    if _AZURE_WIDE_SCOPE.fullmatch(str(scope)):
        yield f"{assignment.name} assigns its role on {scope}, every resource of a subscription or resource group: assign it on the one resource"
    elif _AZURE_VAULT_SCOPE.fullmatch(str(scope)):
        yield f"{assignment.name} assigns its role on the whole vault {scope}, every secret and key in it: assign it on the one secret or key"


def _least_privilege_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    yield from judge_each(of_type(args, *AWS_POLICY_DOCUMENTS), _document_problems)
    yield from judge_each(of_type(args, "aws:iam/role:Role"), _role_problems)
    yield from judge_each(of_type(args, "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws:iam/policyAttachment:PolicyAttachment"),
                          _attachment_problems)
    yield from judge_each((r for r in args.resources if _GCP_GRANT.match(r.resource_type)), _gcp_binding_problems)
    yield from judge_each(of_type(args, "azure-native:authorization:RoleAssignment"), _azure_assignment_problems)


IAM_LEAST_PRIVILEGE = stack_policy(
    "iam-least-privilege",
    "IAM policies name their actions and resources: no wildcard action, no `*` resource except for the actions AWS authorizes on `*` "
    "only (policies/iam.py lists them, with why), no privilege-escalation action, no administrator managed policy; "
    "on GCP no owner/editor or token-creator grant on any resource, no grant to allUsers/allAuthenticatedUsers, and no project-wide "
    "grant of a role a secret, bucket, repository or key grants on itself (secretAccessor and the like); on Azure no Owner, Contributor or "
    "User Access Administrator assignment, and no assignment on a whole subscription, resource group, management group or Key Vault.",
    severity=Severity.HIGH,
    remediation="Name each action and the stack's resources it needs (ARNs built from the names the program chooses); "
    "if an action truly takes no resource, add it to RESOURCELESS_ACTIONS in policies/iam.py with the reason.",
    check=_least_privilege_violations,
    clouds=("aws", "gcp", "azure-native"),
)


def _open_principal(statement: Any) -> bool:
    """A statement that allows every principal: `*`, or `{"AWS": "*"}` (or a list holding `*`)."""
    principal = get(statement, "Principal")
    if principal == "*":
        return True
    return any("*" in _strings(get(principal, kind)) for kind in ("AWS", "Federated", "CanonicalUser"))


def _key_policy_problems(key: PolicyResource) -> Iterator[str]:
    for statement in policy_statements(get(key.props, "policy")):
        if get(statement, "Effect") == "Allow" and (_open_principal(statement) or get(statement, "NotPrincipal") is not None):
            yield f"key {key.name}: {get(statement, 'Sid') or 'a statement'} allows every principal"


def _gcp_key_binding_problems(binding: PolicyResource) -> Iterator[str]:
    members = gcp_members(binding)
    public = [m for m in _GCP_PUBLIC_MEMBERS if m in members]
    if public:
        yield f"{binding.name} lets {', '.join(public)} use the key"


def _key_policy_violations(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    yield from judge_each(of_type(args, "aws:kms/key:Key", "aws:kms/keyPolicy:KeyPolicy"), _key_policy_problems)
    yield from judge_each(of_type(args, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "gcp:kms/cryptoKeyIAMBinding:CryptoKeyIAMBinding"),
                          _gcp_key_binding_problems)


KEY_POLICIES_NAME_PRINCIPALS = stack_policy(
    "key-policies-name-principals",
    "Key policies allow named principals only (the account, a service with a condition), never `*`; GCP keys are never bound to allUsers.",
    severity=Severity.CRITICAL,
    remediation="Replace the wildcard principal with the account root or the service principal, with a condition on the source account.",
    check=_key_policy_violations,
    clouds=("aws", "gcp"),
)

POLICIES = [IAM_LEAST_PRIVILEGE, KEY_POLICIES_NAME_PRINCIPALS]
