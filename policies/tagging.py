"""Tagging: every taggable resource carries the required keys with non-empty values, in its own
inputs (AWS and Azure tags, GCP labels), so that cost reports, budgets and owners can be found.

Whether a type is taggable is read from its SDK (does the resource take `tags`/`labels`?), not
from a list of ours that would fall behind the resources the program uses.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator, Mapping
from functools import cache

from pulumi_policy import PolicyConfigSchema, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy, Severity

from dpc.settings import REQUIRED_TAG_KEYS
from policies.common import get, mapping

_SDK_PACKAGES = {"aws": ("pulumi_aws", ("tags",)), "gcp": ("pulumi_gcp", ("user_labels", "labels")), "azure-native": ("pulumi_azure_native", ("tags",))}
"""Each cloud's SDK and the inputs that hold a resource's tags, the first a type takes: on GCP a type
whose `labels` are something else (a notification channel's: its e-mail address) keeps its labels in
`user_labels`."""


@cache
def tag_input(token: str) -> str | None:
    """The input (wire name) that holds a resource type's tags (`tags`; on GCP `labels`, or
    `userLabels`), or None when the type takes none or belongs to no cloud SDK (components, Docker,
    providers).
    """
    package, module_path, class_name = [*token.split(":"), "", ""][:3]
    if package not in _SDK_PACKAGES or not class_name:
        return None
    sdk, tag_keys = _SDK_PACKAGES[package]
    module_name = module_path.split("/")[0]
    try:
        module = importlib.import_module(sdk if module_name == "index" else f"{sdk}.{module_name}")
    except ImportError:
        return None
    init = getattr(getattr(module, class_name, None), "_internal_init", None)
    parameters: Mapping[str, inspect.Parameter] = inspect.signature(init).parameters if init is not None else {}
    found = next((key for key in tag_keys if key in parameters), None)
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), found) if found else None


PLACEHOLDER = re.compile(r"(?i)[-_.?*/ ]*|n[-/_]?a|none|null|nil|unknown|tbd|todo|tba|changeme|change-me|default|test|xxx+|x|placeholder|example")
"""Values that fill a tag without saying anything: a reader of the bill learns nothing from them."""


LABEL_LIMIT = 63
"""The longest label key GCP takes."""


def gcp_label_key(key: str) -> str:
    """A tag key as the GCP builders write it as a label key (providers/gcp/labels.py): snake case at
    each lowercase-or-digit-to-capital step, lowercase, any other character `_`, at most 63
    characters; `CostCenter` → `cost_center`. Written out here rather than imported: the pack judges
    the program, and a rule that took the program's helper would follow it wherever it went.
    """
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()
    return re.sub(r"[^a-z0-9_-]", "_", snake)[:LABEL_LIMIT]


def _missing_tags(args: ResourceValidationArgs) -> Iterator[str]:
    tag_key = tag_input(args.resource_type)
    if tag_key is None:
        return
    required: list[str] = list(args.get_config()["requiredKeys"])
    keys = [gcp_label_key(k) for k in required] if args.resource_type.startswith("gcp:") else required
    tags = mapping(get(args.props, tag_key))
    missing = [k for k in keys if not str(tags.get(k) or "").strip()]
    if missing:
        yield f"{tag_key} {', '.join(missing)} missing or empty"
    placeholders = [f"{k}={tags[k]!r}" for k in keys if k not in missing and PLACEHOLDER.fullmatch(str(tags[k]).strip())]
    if placeholders:
        yield f"{tag_key} {', '.join(placeholders)} say nothing: give each the real owner, cost center, environment or service"


def _validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for message in _missing_tags(args):
        report_violation(message, None)


REQUIRED_TAGS = ResourceValidationPolicy(
    "required-tags",
    "Every taggable AWS, GCP and Azure resource carries the required tags (GCP: labels) with meaningful values (not empty, `-`, `n/a`, `tbd` …).",
    _validate,
    severity=Severity.MEDIUM,
    remediation_steps="Add the missing keys to the resource's own tags (GCP labels, in snake_case); the program's stack_tags() gives every key.",
    config_schema=PolicyConfigSchema({"requiredKeys": {"type": "array", "items": {"type": "string"}, "default": list(REQUIRED_TAG_KEYS)}}),
    tags=sorted(_SDK_PACKAGES),
)

POLICIES = [REQUIRED_TAGS]
