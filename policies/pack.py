"""The pack's name and every policy it enforces, gathered from the modules of each concern.

Kept apart from `__main__.py` because constructing the PolicyPack starts its gRPC server and
never returns; the offline plan and the tests read the policies from here.
"""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, Policy

from policies import encryption, hardening, iam, lifecycle, secret_leaks, segmentation, tagging

PACK_NAME = "dpc-policies"
PACK_VERSION = "0.0.1"
"""The version the Python policy host serves the pack as: PulumiPolicy.yaml names none, and the host
then reports 0.0.1 (the engine's "can't run policy" notes name the pack as `dpc-policies@v0.0.1`).
"""
DEFAULT_ENFORCEMENT = EnforcementLevel.MANDATORY
"""Without a config file the pack blocks; `policies/config/dev.json` relaxes it to advisory."""

POLICIES: list[Policy] = [
    *encryption.POLICIES,
    *segmentation.POLICIES,
    *secret_leaks.POLICIES,
    *tagging.POLICIES,
    *lifecycle.POLICIES,
    *hardening.POLICIES,
    *iam.POLICIES,
]
