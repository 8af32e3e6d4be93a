"""Tagging: every taggable resource carries the required keys with non-empty values, in its own
inputs (AWS and Azure tags, GCP labels), so that cost reports, budgets and owners can be found.

Whether a type is taggable is read from its SDK (does the resource take `tags`/`labels`?), not
from a list of ours that would fall behind the resources the program uses.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from functools import cache

from pulumi_policy import PolicyConfigSchema, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy, Severity

from dpc.settings import REQUIRED_TAG_KEYS
from policies.common import get, mapping

_SDK_PACKAGES = {"aws": ("pulumi_aws", "tags"), "gcp": ("pulumi_gcp", "labels"), "azure-native": ("pulumi_azure_native", "tags")}


@cache
def tag_input(token: str) -> str | None:
    """The input that holds a resource type's tags (`tags`, or `labels` on GCP), or None when the
    type takes none or belongs to no cloud SDK (components, Docker, providers).
    """
    package, module_path, class_name = [*token.split(":"), "", ""][:3]
    if package not in _SDK_PACKAGES or not class_name:
        return None
    sdk, tag_key = _SDK_PACKAGES[package]
    module_name = module_path.split("/")[0]
    try:
        module = importlib.import_module(sdk if module_name == "index" else f"{sdk}.{module_name}")
    except ImportError:
        return None
    cls = getattr(module, class_name, None)
    init = getattr(cls, "_internal_init", None)
    return tag_key if init is not None and tag_key in inspect.signature(init).parameters else None


PLACEHOLDER = re.compile(r"(?i)[-_.?*/ ]*|n/?a|none|null|nil|unknown|tbd|todo|tba|changeme|change-me|default|test|xxx+|x|placeholder|example")
"""Values that fill a tag without saying anything: a reader of the bill learns nothing from them."""


def gcp_label_key(key: str) -> str:
    """A tag key as a GCP label key, which must be lowercase: `CostCenter` → `cost_center`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _missing_tags(args: ResourceValidationArgs) -> Iterator[str]:
    tag_key = tag_input(args.resource_type)
    if tag_key is None:
        return
    required: list[str] = list(args.get_config()["requiredKeys"])
    keys = [gcp_label_key(k) for k in required] if tag_key == "labels" else required
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
