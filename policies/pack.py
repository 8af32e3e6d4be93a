"""The pack's name and every policy it enforces, gathered from the modules of each concern.

Kept apart from `__main__.py` because constructing the PolicyPack starts its gRPC server and
never returns; the offline plan and the tests read the policies from here.
"""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, Policy

from policies import encryption, hardening, lifecycle, secret_leaks, segmentation, tagging

PACK_NAME = "dpc-policies"
DEFAULT_ENFORCEMENT = EnforcementLevel.MANDATORY
"""Without a config file the pack blocks; `policies/config/dev.json` relaxes it to advisory."""

POLICIES: list[Policy] = [
    *encryption.POLICIES,
    *segmentation.POLICIES,
    *secret_leaks.POLICIES,
    *tagging.POLICIES,
    *lifecycle.POLICIES,
    *hardening.POLICIES,
]
