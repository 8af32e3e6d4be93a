"""Plans in the shapes the engine hands the pack beyond the offline plan's own: the state after
`pulumi refresh` (outputs: ids, and a security group's `ingress`/`egress` listing the rules managed
as separate resources, as EC2 describes them), and the file a real `pulumi preview --json` prints
(the raw unknown sentinel, secrets as ciphertext envelopes, outputs beside inputs, empty fields left
out as the engine's serializer omits them, a delete with no new state, a replacement listed once per
step).
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any, cast

from review.mocks import mock_id
from review.plan import SECRET_MARK, SECRET_SIG, UNKNOWN, build_plan

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
RULES = {"aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "ingress", "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "egress"}


@cache
def preview_of(stack: str) -> dict[str, Any]:
    """A shipped stack's offline plan in preview mode, built once per session (callers copy it
    before they change it)."""
    return build_plan(stack, preview=True)


def _described(rule: dict[str, Any], group_id: str, peer_id: str | None) -> dict[str, Any]:
    """A separately managed rule as EC2 describes it in its group (DescribeSecurityGroups), which
    the provider reads into the group's `ingress`/`egress` output on refresh."""
    protocol = str(rule.get("ipProtocol", "-1"))
    everything = protocol == "-1"
    return {
        "cidrBlocks": [rule["cidrIpv4"]] if rule.get("cidrIpv4") else [],
        "description": rule.get("description", ""),
        "fromPort": 0 if everything else rule.get("fromPort", 0),
        "ipv6CidrBlocks": [rule["cidrIpv6"]] if rule.get("cidrIpv6") else [],
        "prefixListIds": [rule["prefixListId"]] if rule.get("prefixListId") else [],
        "protocol": protocol,
        "securityGroups": [peer_id] if peer_id and peer_id != group_id else [],
        "self": peer_id == group_id,
        "toPort": 0 if everything else rule.get("toPort", 0),
    }


def after_refresh(plan: dict[str, Any]) -> dict[str, Any]:
    """An up-shaped plan as the engine's state holds it after `pulumi refresh`: every resource's
    outputs, its inputs and id, each security group listing the rules that target it."""
    refreshed = copy.deepcopy(plan)
    steps: list[dict[str, Any]] = refreshed["steps"]
    ids = {s["urn"]: mock_id(s["newState"]["type"], s["urn"].split("::")[-1]) for s in steps}
    listed: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for step in steps:
        state = step["newState"]
        direction = RULES.get(state["type"])
        if direction is None:
            continue
        [group] = state["propertyDependencies"]["securityGroupId"]
        peers = state["propertyDependencies"].get("referencedSecurityGroupId", [])
        entry = _described(state["inputs"], ids[group], ids[peers[0]] if peers else None)
        listed.setdefault(group, {"ingress": [], "egress": []})[direction].append(entry)
    for step in steps:
        state = step["newState"]
        state["outputs"] = {**state["inputs"], "id": ids[step["urn"]]}
        if state["type"] == SECURITY_GROUP:
            state["outputs"] |= listed.get(step["urn"], {"ingress": [], "egress": []})
    return refreshed


def _as_printed(value: Any) -> Any:
    """A property as the CLI prints it: unknowns as the sentinel, secrets as ciphertext envelopes."""
    if value == "[unknown]":
        return UNKNOWN
    if value == "[secret]":
        return {SECRET_SIG: SECRET_MARK, "ciphertext": "v1:AAAA"}
    if isinstance(value, dict):
        return {key: _as_printed(item) for key, item in cast(dict[str, Any], value).items()}
    if isinstance(value, list):
        return [_as_printed(item) for item in cast(list[Any], value)]
    return value


def as_cli_preview(plan: dict[str, Any], replaced: str, deleted_type: str) -> dict[str, Any]:
    """An offline preview plan as a real `pulumi preview --json` prints it on a stack that exists:
    creates with outputs (inputs, id unknown), no empty dependencies, parent, provider or protect
    (the serializer omits them), the resource whose
    URN ends with `replaced` in three steps (create-replacement, replace, delete-replaced), and one
    more step deleting a resource of `deleted_type` the program no longer declares."""
    printed: list[dict[str, Any]] = []
    for step in plan["steps"]:
        state = _as_printed(step["newState"])
        for empty in [key for key in ("propertyDependencies", "dependencies", "parent", "provider", "protect") if not state[key]]:
            del state[empty]
        state["outputs"] = {**state["inputs"], "id": UNKNOWN}
        if step["urn"].endswith(f"::{replaced}"):
            printed += [{"op": op, "urn": step["urn"], "provider": step["provider"], "oldState": state, "newState": state}
                        for op in ("create-replacement", "replace")]
            printed.append({"op": "delete-replaced", "urn": step["urn"], "provider": step["provider"], "oldState": state, "newState": state})
        else:
            printed.append({"op": "create", "urn": step["urn"], "provider": step["provider"], "newState": state})
    gone = f"urn:pulumi:prod::dpc::{deleted_type}::retired"
    printed.append({"op": "delete", "urn": gone, "provider": "", "oldState": {"urn": gone, "type": deleted_type, "inputs": {}}, "newState": None})
    return {"steps": printed, "changeSummary": {"create": len(plan["steps"]), "replace": 1, "delete": 1}, "diagnostics": []}
