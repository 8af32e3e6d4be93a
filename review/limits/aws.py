"""AWS's documented API limits, as checks over a plan (`review.limits`).

Each limit names the page of AWS's documentation it comes from. What pulumi-aws itself fixes is not
checked again: it truncates generated names to each field's length and lowercases bucket names, so
only the characters of the logical names it builds them from are checked.
"""

from __future__ import annotations

import base64
import json
import re
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, cast

from dpc.catalog import MACHINE_TYPES
from review.limits import Breach, Check, PlanIndex, TextLimit, known, text_checks, values_at
from review.policy import PlannedResource

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INSTANCE = "aws:ec2/instance:Instance"
VOLUME = "aws:ebs/volume:Volume"
VOLUME_ATTACHMENT = "aws:ec2/volumeAttachment:VolumeAttachment"
ROUTE = "aws:ec2/route:Route"
ROUTE_TABLE_ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
BUCKET = "aws:s3/bucket:Bucket"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"

_EC2_DOCS = "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_IpRange.html"
_EC2_TEXT = re.compile(r"[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]*")
_EC2_TEXT_SAID = "EC2 takes a-z, A-Z, 0-9, spaces and ._-:/()#,@[]+=&;{}!$*"
_IAM_DOCS = "https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html"
_TAG_DOCS = "https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html"
_TAG_TEXT = re.compile(r"[\w\s+\-=._:/@]*")
_USER_DATA_DOCS = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html"
USER_DATA_MAX_BYTES = 16 * 1024
"""EC2 refuses user data over 16 KB, counted raw, before base64."""
_LIFECYCLE_DOCS = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-transition-general-considerations.html"
_EBS_DOCS = "https://docs.aws.amazon.com/ebs/latest/userguide/ebs-optimized.html"
_NAT_DOCS = "https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-scenarios.html"

TEXT_LIMITS = (
    TextLimit((INGRESS, EGRESS, SECURITY_GROUP_RULE), "description", "security group rule description", 255, _EC2_DOCS, _EC2_TEXT, _EC2_TEXT_SAID, 0),
    TextLimit((SECURITY_GROUP,), "description", "security group description", 255, _EC2_DOCS, _EC2_TEXT, _EC2_TEXT_SAID),
    TextLimit((SECURITY_GROUP,), "ingress[].description", "security group rule description", 255, _EC2_DOCS, _EC2_TEXT, _EC2_TEXT_SAID, 0),
    TextLimit((SECURITY_GROUP,), "egress[].description", "security group rule description", 255, _EC2_DOCS, _EC2_TEXT, _EC2_TEXT_SAID, 0),
    TextLimit((ROLE,), "name", "IAM role name", 64, _IAM_DOCS, re.compile(r"[\w+=,.@-]+")),
    TextLimit((ROLE,), "description", "IAM role description", 1000, _IAM_DOCS, re.compile(r"[\t\n\r\u0020-\u007e\u00a1-\u00ff]*"), "", 0),
    TextLimit(("aws:iam/instanceProfile:InstanceProfile",), "name", "instance profile name", 128,
              "https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateInstanceProfile.html", re.compile(r"[\w+=,.@-]+")),
    TextLimit(("aws:kms/alias:Alias",), "name", "KMS alias", 256, "https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html",
              re.compile(r"alias/(?!aws/)[a-zA-Z0-9/_-]+"), "alias/ then a-zA-Z0-9/_-, not alias/aws/"),
    TextLimit(("aws:kms/key:Key",), "description", "KMS key description", 8192,
              "https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateKey.html", None, "", 0),
    TextLimit(("aws:ssm/parameter:Parameter",), "name", "SSM parameter name", 1011, "https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html",
              re.compile(r"(?!/?(aws|ssm))[a-zA-Z0-9_.\-/]+", re.IGNORECASE), "a-zA-Z0-9_.-/, not starting with aws or ssm"),
    TextLimit(("aws:ssm/parameter:Parameter",), "description", "SSM parameter description", 1024,
              "https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html", None, "", 0),
    TextLimit(("aws:ecr/repository:Repository",), "name", "ECR repository name", 256, "https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_CreateRepository.html",
              re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*"), "lowercase words joined by . _ - or /", 2),
    TextLimit(("aws:cloudwatch/logGroup:LogGroup",), "name", "log group name", 512,
              "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html", re.compile(r"[.\-_/#A-Za-z0-9]+")),
    TextLimit(("aws:budgets/budget:Budget",), "name", "budget name", 100, "https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_budgets_Budget.html",
              re.compile(r"[^:\\]+"), "no : or \\"),
    TextLimit((LOAD_BALANCER, TARGET_GROUP), "name", "load balancer or target group name", 32,
              "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html",
              re.compile(r"(?!internal-)[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?")),
    TextLimit((BUCKET,), "bucket", "bucket name", 63, "https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html",
              re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]"), "", 3),
    TextLimit((LIFECYCLE,), "rules[].id", "lifecycle rule id", 255, "https://docs.aws.amazon.com/AmazonS3/latest/API/API_LifecycleRule.html"),
)

_GENERATED_NAMES: dict[str, tuple[re.Pattern[str], str, str]] = {
    BUCKET: (re.compile(r"[a-zA-Z0-9.-]+"), "bucket names take letters (lowercased), digits, . and -", "https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html"),
    LOAD_BALANCER: (re.compile(r"[a-zA-Z0-9-]+"), "load balancer names take letters, digits and -", "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html"),
    TARGET_GROUP: (re.compile(r"[a-zA-Z0-9-]+"), "target group names take letters, digits and -", "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateTargetGroup.html"),
    ROLE: (re.compile(r"[\w+=,.@-]+"), "IAM role names take letters, digits and _+=,.@-", _IAM_DOCS),
}
"""Types pulumi-aws names after the logical name when the program gives no name."""


def _generated_names(plan: PlanIndex) -> Iterator[Breach]:
    name_field = {BUCKET: "bucket", LOAD_BALANCER: "name", TARGET_GROUP: "name", ROLE: "name"}
    for typ, (allowed, said, source) in _GENERATED_NAMES.items():
        for resource in plan.of_type(typ):
            if name_field[typ] not in resource.inputs and not allowed.fullmatch(resource.name):
                yield Breach(resource.urn, name_field[typ], f"generated from the logical name {resource.name!r}, which the API refuses: {said}", source)


def _tags(plan: PlanIndex) -> Iterator[Breach]:
    """Tags: at most 50, keys 1–128 and values 0–256 characters of the allowed set, no `aws:` keys."""
    for resource in plan.resources:
        if not resource.type.startswith("aws:"):
            continue
        for where, tags in [*values_at(resource.inputs, "tags"), *values_at(resource.inputs, "rootBlockDevice.tags")]:
            if not isinstance(tags, Mapping):
                continue
            tag_map = cast(Mapping[str, Any], tags)
            if len(tag_map) > 50:
                yield Breach(resource.urn, where, f"{len(tag_map)} tags; AWS takes at most 50", _TAG_DOCS)
            for key, value in tag_map.items():
                if not 1 <= len(key) <= 128 or key.lower().startswith("aws:") or not _TAG_TEXT.fullmatch(key):
                    yield Breach(resource.urn, f"{where}.{key}", "tag keys take 1–128 letters, digits, spaces and +-=._:/@, not starting with aws:", _TAG_DOCS)
                if isinstance(value, str) and known(value) and (len(value) > 256 or not _TAG_TEXT.fullmatch(value)):
                    yield Breach(resource.urn, f"{where}.{key}", f"tag value {value!r}: at most 256 letters, digits, spaces and +-=._:/@", _TAG_DOCS)


def _user_data(plan: PlanIndex) -> Iterator[Breach]:
    """The user data as EC2 counts it: the bytes it receives, before base64 (gzip included)."""
    for instance in plan.of_type(INSTANCE):
        for field_name, value in (("userData", instance.inputs.get("userData")), ("userDataBase64", instance.inputs.get("userDataBase64"))):
            if not isinstance(value, str) or not known(value):
                continue
            size = len(base64.b64decode(value)) if field_name == "userDataBase64" else len(value.encode())
            if size > USER_DATA_MAX_BYTES:
                yield Breach(instance.urn, field_name, f"{size} bytes; EC2 takes at most {USER_DATA_MAX_BYTES} before base64", _USER_DATA_DOCS)


_INFREQUENT_CLASSES = {"STANDARD_IA", "ONEZONE_IA"}
_MINIMUM_DAYS_IN_CLASS = {"STANDARD_IA": 30, "ONEZONE_IA": 30, "GLACIER_IR": 90, "GLACIER": 90, "DEEP_ARCHIVE": 180}


def _lifecycle_rule(urn: str, where: str, rule: Mapping[str, Any], *, current: bool) -> Iterator[Breach]:
    """S3 refuses a transition to an infrequent-access class sooner than 30 days, and any later
    transition less than 30 days after an infrequent-access one; an expiry before the last
    transition is refused too.
    """
    key, days_key, expiry_key = (
        ("transitions", "days", "expiration") if current else ("noncurrentVersionTransitions", "noncurrentDays", "noncurrentVersionExpiration")
    )
    transitions = sorted(
        ((int(t[days_key]), str(t["storageClass"])) for t in cast(list[Mapping[str, Any]], rule.get(key) or []) if known(t.get(days_key))),
    )
    infrequent_since: int | None = None
    for days, storage_class in transitions:
        if storage_class in _INFREQUENT_CLASSES and days < 30:
            yield Breach(urn, f"{where}.{key}", f"{storage_class} after {days} days; S3 requires at least 30", _LIFECYCLE_DOCS)
        if infrequent_since is not None and storage_class not in _INFREQUENT_CLASSES and days < infrequent_since + 30:
            message = f"{storage_class} after {days} days, less than 30 days after the move to infrequent access on day {infrequent_since}"
            yield Breach(urn, f"{where}.{key}", message, _LIFECYCLE_DOCS)
        if storage_class in _INFREQUENT_CLASSES:
            infrequent_since = days
    expiry = rule.get(expiry_key)
    expiry_days = cast(Mapping[str, Any], expiry).get(days_key) if isinstance(expiry, Mapping) else None
    if transitions and known(expiry_days) and int(cast(int, expiry_days)) <= transitions[-1][0]:
        yield Breach(urn, f"{where}.{expiry_key}", f"expiry on day {expiry_days} is not after the last transition on day {transitions[-1][0]}", _LIFECYCLE_DOCS)


def _lifecycles(plan: PlanIndex) -> Iterator[Breach]:
    for resource in plan.of_type(LIFECYCLE):
        for where, rule in values_at(resource.inputs, "rules[]"):
            if isinstance(rule, Mapping):
                yield from _lifecycle_rule(resource.urn, where, cast(Mapping[str, Any], rule), current=True)
                yield from _lifecycle_rule(resource.urn, where, cast(Mapping[str, Any], rule), current=False)


def _attached_volumes(plan: PlanIndex) -> dict[str, list[PlannedResource]]:
    """Each instance's volumes, by the instance's id as the plan shows it."""
    volume_by_id = {r.urn: r for r in plan.of_type(VOLUME)}
    attached: dict[str, list[PlannedResource]] = {}
    for attachment in plan.of_type(VOLUME_ATTACHMENT):
        volume = next((volume_by_id[d] for d in attachment.dependencies if d in volume_by_id), None)
        instance = next((d for d in attachment.dependencies if d in plan.by_urn and plan.by_urn[d].type == INSTANCE), None)
        if volume is not None and instance is not None:
            attached.setdefault(instance, []).append(volume)
    return attached


def _volumes_within_the_machine(plan: PlanIndex) -> Iterator[Breach]:
    """IOPS and throughput beyond what the machine's EBS link carries at its maximum are paid for
    and never used: the attached volumes together must fit it.
    """
    for instance_urn, volumes in _attached_volumes(plan).items():
        instance = plan.by_urn[instance_urn]
        machine = MACHINE_TYPES["aws"].get(str(instance.inputs.get("instanceType")))
        if machine is None or machine.storage is None:
            continue
        limits = machine.storage
        iops = sum(int(v.inputs.get("iops") or 0) for v in volumes)
        throughput = sum(int(v.inputs.get("throughput") or 0) for v in volumes)
        names = ", ".join(v.name for v in volumes)
        if iops > limits.maximum_iops:
            message = f"{machine.name} drives at most {limits.maximum_iops} EBS IOPS; its volumes ({names}) ask {iops}"
            yield Breach(instance_urn, "instanceType", message, _EBS_DOCS)
        if throughput > limits.mib_per_second(limits.maximum_mbps):
            yield Breach(
                instance_urn, "instanceType",
                f"{machine.name} drives at most {limits.mib_per_second(limits.maximum_mbps)} MiB/s of EBS throughput; its volumes ({names}) ask {throughput}",
                _EBS_DOCS,
            )


def _linked(resource: PlannedResource, prop: str) -> object:
    """What an id property points at: the resource it was computed from, which the engine records
    even where the id is unknown (a first preview), else its value; None when neither is known.
    """
    sources = (resource.property_dependencies or {}).get(prop)
    value = resource.inputs.get(prop)
    return sources[0] if sources else value if known(value) else None


def _egress_before_boot(plan: PlanIndex) -> Iterator[Breach]:
    """A machine in a private subnet installs its packages at first boot through the NAT gateway:
    it must not be created before its subnet's route table is associated and routes to the NAT.
    """
    associations = {key: a for a in plan.of_type(ROUTE_TABLE_ASSOCIATION) if (key := _linked(a, "subnetId")) is not None}
    nat_routes = {key: r for r in plan.of_type(ROUTE) if r.inputs.get("natGatewayId") and (key := _linked(r, "routeTableId")) is not None}
    for instance in plan.of_type(INSTANCE):
        association = associations.get(_linked(instance, "subnetId"))
        route = nat_routes.get(_linked(association, "routeTableId")) if association else None
        if route is None or association is None:
            continue
        missing = [r.name for r in (association, route) if r.urn not in plan.waits_for(instance.urn)]
        if missing:
            yield Breach(instance.urn, "dependsOn", f"boots before its way out exists ({', '.join(missing)}): its first apt run would fail", _NAT_DOCS)


_POLICY_FIELDS = {
    ROLE_POLICY: "policy",
    "aws:iam/policy:Policy": "policy",
    "aws:s3/bucketPolicy:BucketPolicy": "policy",
    "aws:kms/key:Key": "policy",
}
_PARLIAMENT_DOCS = "https://github.com/duo-labs/parliament"
ACCEPTED_FINDINGS: dict[tuple[str, str], str] = {
    ("aws:kms/key:Key", "RESOURCE_STAR"): "a key policy's Resource is always \"*\": it means the key itself (KMS documents no other form)",
    ("aws:kms/key:Key", "UNKNOWN_CONDITION_FOR_ACTION"): (
        "CloudWatch Logs' documented key policy grants kms:Describe* and the other wildcards under its encryption-context condition; "
        "the linter expands the wildcards to actions that carry no such context"
    ),
    ("aws:kms/key:Key", "MISMATCHED_TYPE"): "CloudWatch Logs' documented key policy matches kms:EncryptionContext:aws:logs:arn with ArnLike",
    ("aws:s3/bucketPolicy:BucketPolicy", "MISMATCHED_TYPE"): (
        "s3:TlsVersion is compared as a number, \"1.2\" as S3's documentation writes it; the linter's numeric check takes integers only"
    ),
    ("aws:s3/bucketPolicy:BucketPolicy", "UNKNOWN_CONDITION_FOR_ACTION"): (
        "the TLS-only statements deny s3:* on a condition some S3 actions do not carry; for those the Deny simply does not apply, as AWS documents"
    ),
}
"""Findings of the IAM linter that are right for AWS and deliberate here, with the reason."""


def _policies(plan: PlanIndex) -> Iterator[Breach]:
    """Every policy document through parliament, the IAM policy linter, once per finding kind.
    Imported here: loading its catalogue of IAM actions takes half a second, which the tests spend
    and the plan command does not (`review.limits.check_plan`).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # parliament imports the deprecated pkg_resources
        from parliament import analyze_policy_string  # noqa: PLC0415  # pyright: ignore[reportMissingTypeStubs, reportUnknownVariableType]

    for resource in plan.of_type(*_POLICY_FIELDS):
        document = resource.inputs.get(_POLICY_FIELDS[resource.type])
        if not isinstance(document, str) or not known(document) or "[unknown]" in document:
            continue
        try:
            json.loads(document)
        except json.JSONDecodeError:
            yield Breach(resource.urn, _POLICY_FIELDS[resource.type], "is not a JSON policy document", _PARLIAMENT_DOCS)
            continue
        try:
            findings = cast(list[Any], analyze_policy_string(document, include_community_auditors=False).findings)  # pyright: ignore[reportUnknownMemberType]
        except (TypeError, ValueError) as error:
            yield Breach(resource.urn, _POLICY_FIELDS[resource.type], f"the IAM linter cannot read it ({error})", _PARLIAMENT_DOCS)
            continue
        seen: set[str] = set()
        for finding in findings:
            issue = str(finding.issue)
            if issue in seen or (resource.type, issue) in ACCEPTED_FINDINGS:
                continue
            seen.add(issue)
            yield Breach(resource.urn, _POLICY_FIELDS[resource.type], f"IAM linter: {issue} {str(finding.detail)[:200]}", _PARLIAMENT_DOCS)


_CONFUSED_DEPUTY_DOCS = "https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html"
SERVICES_WITHOUT_SOURCE_CONTEXT = frozenset({"ec2.amazonaws.com"})
"""Service principals that send no aws:SourceAccount when they assume a role: an instance profile's
role is handed to EC2 by iam:PassRole in the same account only, so there is no deputy to confuse."""


def _trust_policies(plan: PlanIndex) -> Iterator[Breach]:
    """A role an AWS service assumes on the account's behalf names the account it may act for
    (`aws:SourceAccount`), so another account cannot have the service act with it.
    """
    for role in plan.of_type(ROLE):
        document = role.inputs.get("assumeRolePolicy")
        if not isinstance(document, str) or not known(document):
            continue
        for statement in cast(list[dict[str, Any]], json.loads(document).get("Statement", [])):
            principal = statement.get("Principal")
            named: object = cast(Mapping[str, Any], principal).get("Service", []) if isinstance(principal, Mapping) else []
            services: list[str] = [named] if isinstance(named, str) else cast(list[str], named)
            conditions = json.dumps(statement.get("Condition", {}))
            for service in services:
                if service not in SERVICES_WITHOUT_SOURCE_CONTEXT and "aws:SourceAccount" not in conditions:
                    message = f"{service} may assume it for any account: add the condition aws:SourceAccount"
                    yield Breach(role.urn, "assumeRolePolicy", message, _CONFUSED_DEPUTY_DOCS)


CHECKS: tuple[Check, ...] = (
    text_checks(TEXT_LIMITS),
    _generated_names,
    _tags,
    _user_data,
    _lifecycles,
    _volumes_within_the_machine,
    _egress_before_boot,
    _trust_policies,
)

IAM_LINT: tuple[Check, ...] = (_policies,)
"""Run by the tests on every shipped stack, and by `python -m review plan --lint-iam`."""
