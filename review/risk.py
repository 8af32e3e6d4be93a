"""`python -m review risk`: each step of a change classed `safe`, `review`, `dangerous` or
`irreversible`, with its reasons, so that a reviewer reads first what loses data or identity.

The rules (issue 11, "Risk"), in the order a reviewer weighs them:

- replacing or deleting what holds data (volumes, buckets, registries, keys, databases) is
  `irreversible`: the new one starts empty, or what the old key encrypted cannot be read once its
  deletion window ends;
- replacing or deleting what holds identity is `dangerous`: the CA (every certificate it signed is
  re-issued), private keys, generated passwords, Docker secrets (every service that mounts one
  rolls), public addresses, and the machines that hold etcd or Patroni members, known by type and by
  what the plan says they hold (the `Role` tag the program writes, `dpc.model.SERVICES_BY_ROLE`, or
  any tag or label naming etcd or Patroni on a stack the program did not write);
- more than one etcd or Patroni member replaced or deleted in one change is `dangerous`: the
  engine runs independent steps at once, and two of three members down loses etcd's quorum or
  Patroni's synchronous replica (design §5.2);
- unprotecting a resource in prod is `dangerous`;
- any other replacement is at least `review`, with its blast radius (what depends on it, through
  `dependencies` and provider references);
- an op this tool does not know, a type it cannot judge, or an update that may be a replacement (no
  replace-on-change table for its type) is at least `review`, and says so: nothing is dropped.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, cast

from dpc.model import SERVICES_BY_ROLE, Role
from review.steps import ENGINE_OPS, Change, Step, load_change


class Risk(IntEnum):
    """Ordered: the worst of a change is the max of its steps'."""

    SAFE = 0
    REVIEW = 1
    DANGEROUS = 2
    IRREVERSIBLE = 3

    @property
    def label(self) -> str:
        """The lower-case name the reports use."""
        return self.name.lower()


DATA_HOLDERS: Mapping[str, str] = {
    "aws:ebs/volume:Volume": "an EBS volume: its data",
    "aws:s3/bucket:Bucket": "an S3 bucket: its objects",
    "aws:s3/bucketV2:BucketV2": "an S3 bucket: its objects",
    "aws:ecr/repository:Repository": "an image registry: its images",
    "aws:kms/key:Key": "a KMS key: whatever it encrypted, once its deletion window ends",
    "aws:rds/instance:Instance": "a database instance: its data",
    "aws:rds/cluster:Cluster": "a database cluster: its data",
    "aws:dynamodb/table:Table": "a DynamoDB table: its items",
    "aws:efs/fileSystem:FileSystem": "a file system: its files",
    "aws:cloudwatch/logGroup:LogGroup": "a log group: its logs",
    "gcp:compute/disk:Disk": "a persistent disk: its data",
    "gcp:storage/bucket:Bucket": "a storage bucket: its objects",
    "gcp:kms/cryptoKey:CryptoKey": "a KMS key: whatever it encrypted",
    "gcp:sql/databaseInstance:DatabaseInstance": "a database instance: its data",
    "azure-native:compute:Disk": "a managed disk: its data",
    "azure-native:storage:StorageAccount": "a storage account: its blobs",
    "azure-native:keyvault:Vault": "a key vault: its keys and secrets",
    "azure-native:keyvault:Key": "a key: whatever it encrypted",
    "docker:index/volume:Volume": "a Docker volume: its data",
}
"""Types whose replacement or deletion loses data."""

IDENTITY_HOLDERS: Mapping[str, str] = {
    "random:index/randomPassword:RandomPassword": "a generated password: everything that logs in with it must take the new one",
    "tls:index/privateKey:PrivateKey": "a private key: certificates and trust made for it no longer match",
    "tls:index/selfSignedCert:SelfSignedCert": "a self-signed certificate (the CA): every certificate it signed is re-issued",
    "docker:index/secret:Secret": "a Docker secret: every service that mounts it rolls",
    "aws:ec2/eip:Eip": "a public address: whoever reaches it by address loses it",
    "aws:lb/loadBalancer:LoadBalancer": "the load balancer: its DNS name changes under every client",
    "aws:iam/role:Role": "a role: trust policies naming it by ARN stop matching",
}
"""Types whose replacement or deletion changes an identity others rely on."""

REATTACHING: Mapping[str, str] = {
    "aws:ec2/volumeAttachment:VolumeAttachment": "detaches the volume from its machine and attaches it again (the volume itself stays)",
    "aws:lb/targetGroupAttachment:TargetGroupAttachment": "takes the target out of the load balancer and puts it back",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "moves the subnet's routes for a moment",
}
"""Types whose replacement only re-links two resources that stay."""

RERUNNING: Mapping[str, str] = {
    "command:remote:Command": "runs its command again (a gate or a deployment step of the program)",
    "command:local:Command": "runs its command again",
}
"""Types whose replacement runs something again rather than losing anything."""

MACHINES = frozenset({"aws:ec2/instance:Instance", "gcp:compute/instance:Instance", "azure-native:compute:VirtualMachine"})
MEMBER_SERVICE = re.compile(r"^(etcd|patroni)-\d+$")
"""Swarm services of one etcd or Patroni member, as `dpc.cluster.swarm_layout` names them."""
CLUSTERS = ("etcd", "patroni")
LOSING_OPS = frozenset({"replace", "delete", "delete-replaced"})
HARMLESS_OPS = frozenset({"same", "read", "read-replacement", "refresh", "discard", "discard-replaced"})
BLAST_SHOWN = 5


@dataclass(frozen=True)
class Judgement:
    """One step's class and why."""

    step: Step
    risk: Risk
    reasons: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """The step as the JSON report lists it."""
        return {"urn": self.step.urn, "type": self.step.type, "op": self.step.op, "risk": self.risk.label, "reasons": list(self.reasons)}


def _labels(state: Mapping[str, Any] | None) -> dict[str, str]:
    """Tags and labels of a state, as plain strings (AWS `tags`, GCP `labels`, Docker's label list)."""
    found: dict[str, str] = {}
    for side in ("inputs", "outputs"):
        properties = cast(Mapping[str, Any], (state or {}).get(side) or {})
        for key in ("tags", "labels"):
            value = properties.get(key)
            if isinstance(value, dict):
                found |= {str(k): str(v) for k, v in cast(dict[str, Any], value).items()}
            elif isinstance(value, list):
                for item in cast(list[Any], value):
                    if isinstance(item, dict):
                        entry = cast(dict[str, Any], item)
                        found[str(entry.get("label", ""))] = str(entry.get("value", ""))
    return found


def members_held(step: Step) -> tuple[str, ...]:
    """The clusters (etcd, patroni) whose member this resource holds: a machine by its `Role` tag
    (what the program runs on each role, `SERVICES_BY_ROLE`) or by a tag or label naming the
    cluster; a Swarm service by its member name.
    """
    state = step.old or step.new
    if step.type == "docker:index/service:Service":
        name = str(step.value("name", "old" if step.old is not None else "new") or "")
        match = MEMBER_SERVICE.match(name)
        return (match.group(1),) if match else ()
    if step.type not in MACHINES:
        return ()
    labels = _labels(state)
    held: set[str] = set()
    role = labels.get("Role", "")
    if role in {r.value for r in Role}:
        held |= {cluster for cluster in CLUSTERS if cluster in SERVICES_BY_ROLE[Role(role)]}
    text = " ".join(f"{k}={v}" for k, v in labels.items()).lower()
    held |= {cluster for cluster in CLUSTERS if cluster in text}
    return tuple(sorted(held))


def _is_prod(change: Change, step: Step) -> bool:
    environment = change.config.get("dpc:environment") or _labels(step.old or step.new).get("Environment", "")
    return environment == "prod" or change.stack == "prod"


def _names(urns: Iterable[str]) -> str:
    listed = sorted(urns)
    shown = ", ".join(urn.rsplit("::", 1)[-1] for urn in listed[:BLAST_SHOWN])
    return shown + (f" and {len(listed) - BLAST_SHOWN} more" if len(listed) > BLAST_SHOWN else "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _member(cluster: str) -> str:
    return f"an {cluster} member" if cluster[0] in "aeiou" else f"a {cluster} member"


def _verb(step: Step) -> str:
    return "deleting" if step.op in {"delete", "delete-replaced"} else "replacing"


def _losing(step: Step, reasons: list[str]) -> Risk:
    """Replacement or deletion: what it loses, and the least it is."""
    risk = Risk.REVIEW
    if step.type in DATA_HOLDERS:
        reasons.append(f"{_verb(step)} {DATA_HOLDERS[step.type]}")
        risk = Risk.IRREVERSIBLE
    elif step.type in IDENTITY_HOLDERS:
        reasons.append(f"{_verb(step)} {IDENTITY_HOLDERS[step.type]}")
        risk = Risk.DANGEROUS
    elif step.type in REATTACHING:
        reasons.append(REATTACHING[step.type])
    elif step.type in RERUNNING:
        reasons.append(RERUNNING[step.type])
    for cluster in members_held(step):
        reasons.append(f"{_verb(step)} what holds {_member(cluster)}")
        risk = max(risk, Risk.DANGEROUS)
    if step.op == "replace" and step.replace_reasons:
        reasons.append(f"replaced for {', '.join(step.replace_reasons)}" + (" (deleted before its successor is created)" if step.delete_before_replace else ""))
    if step.protect_old and step.op != "replace":
        reasons.append("protected: `pulumi up` refuses the deletion until it is unprotected")
    if risk is Risk.REVIEW and step.custom and step.type not in MACHINES | REATTACHING.keys() | RERUNNING.keys():
        reasons.append(f"{step.type} is not a type these rules know to hold data or identity: judged by its op alone")
    return risk


NOTED_OPS: Mapping[str, str] = {
    "import": "adopts an existing resource: the program's inputs become its desired state at the next update",
    "import-replacement": "replaces the resource by adopting an existing one: the program's inputs become its desired state",
    "remove-pending-replace": "drops a resource left pending replacement by an earlier, interrupted update",
}
"""Ops that change nothing in the cloud but what Pulumi manages: always `review`."""


def _updating(step: Step, reasons: list[str]) -> Risk:
    """An update in place: `review` where it touches a member or a running machine."""
    held = members_held(step)
    changed = ", ".join(step.diff_reasons) or "its properties"
    if held:
        reasons.append(f"updates what holds {' and '.join(_member(c) for c in held)} ({changed})")
        return Risk.REVIEW
    if step.type in MACHINES:
        reasons.append(f"updates a running machine in place ({changed}): a new machine type stops and starts it")
        return Risk.REVIEW
    return Risk.SAFE


def _by_op(change: Change, step: Step, reasons: list[str]) -> Risk:
    """What the op alone makes of the step."""
    if step.op not in ENGINE_OPS:
        reasons.append(f"op {step.op!r} is not one the engine is known to emit: not judged, review it")
        return Risk.REVIEW
    if step.op in NOTED_OPS:
        reasons.append(NOTED_OPS[step.op])
        return Risk.REVIEW
    if step.op == "update":
        return _updating(step, reasons)
    if step.op not in LOSING_OPS:
        return Risk.SAFE
    risk = _losing(step, reasons)
    if step.op == "replace":
        reasons.extend(_blast_radius(change, step))
    return risk


def _blast_radius(change: Change, step: Step) -> list[str]:
    """What depends on a replaced resource: those that name it, then all that follow from them."""
    direct, every = change.direct_dependents(step.urn), change.dependents(step.urn)
    if not direct:
        return []
    reason = f"blast radius: {_count(len(direct), 'resource')} depend{'s' if len(direct) == 1 else ''} on it ({_names(direct)})"
    return [reason + (f", {len(every)} in all through them" if len(every) > len(direct) else "")]


def judge_step(change: Change, step: Step) -> Judgement:
    """One step's class and reasons, without the rules that look at several steps at once."""
    reasons: list[str] = []
    risk = _by_op(change, step, reasons)
    reasons.extend(step.notes)
    if step.op in ENGINE_OPS and step.op not in HARMLESS_OPS | {"create"} and step.notes:
        risk = max(risk, Risk.REVIEW)
    if step.protect_old and step.protect_new is False and _is_prod(change, step):
        reasons.append("unprotects it in prod: a later change may delete it without `pulumi state unprotect`")
        risk = max(risk, Risk.DANGEROUS)
    return Judgement(step, risk, tuple(reasons))


def _members_at_once(judgements: list[Judgement]) -> list[Judgement]:
    """Raises every member-holding step to `dangerous` when one change takes more than one member
    of the same cluster (machines and member services counted once per member).
    """
    taken: dict[str, set[str]] = {cluster: set() for cluster in CLUSTERS}
    for judgement in judgements:
        if judgement.step.op in LOSING_OPS:
            for cluster in members_held(judgement.step):
                taken[cluster].add(judgement.step.urn)
    raised: list[Judgement] = []
    for judgement in judgements:
        extra = [
            f"takes {_count(len(taken[cluster]), cluster + ' member')} at once in this change ({_names(taken[cluster])}): "
            "one at a time, each back before the next"
            for cluster in members_held(judgement.step)
            if judgement.step.urn in taken[cluster] and len(taken[cluster]) > 1
        ]
        raised.append(Judgement(judgement.step, max(judgement.risk, Risk.DANGEROUS), (*judgement.reasons, *extra)) if extra else judgement)
    return raised


@dataclass(frozen=True)
class RiskReport:
    """A change's judgements and its worst class."""

    stack: str
    judgements: tuple[Judgement, ...]

    @property
    def worst(self) -> Risk:
        """The worst class of any step (safe for an empty change)."""
        return max((j.risk for j in self.judgements), default=Risk.SAFE)

    @property
    def listed(self) -> tuple[Judgement, ...]:
        """What a reader needs: every step that is not an unchanged resource without remarks,
        worst first, then by URN (a stable order for the comment).
        """
        shown = [j for j in self.judgements if j.step.op != "same" or j.reasons]
        return tuple(sorted(shown, key=lambda j: (-j.risk, j.step.urn, j.step.op)))

    def as_json(self) -> dict[str, Any]:
        """`{worst, steps:[{urn, type, op, risk, reasons}]}`: the issue's contract, plus the stack
        and the count of steps per class.
        """
        counts = {risk.label: sum(1 for j in self.judgements if j.risk is risk) for risk in Risk}
        return {"stack": self.stack, "worst": self.worst.label, "counts": counts, "steps": [j.as_json() for j in self.listed]}


def classify(change: Change) -> RiskReport:
    """Every step of the change judged, the rules across steps applied."""
    judgements = _members_at_once([judge_step(change, step) for step in change.steps])
    return RiskReport(change.stack, tuple(judgements))


def _row(j: Judgement) -> str:
    return f"| {j.risk.label} | {j.step.op} | `{j.step.name}` | `{j.step.type}` | {'; '.join(j.reasons).replace('|', '/')} |"


def _grouped(rows: Sequence[Judgement]) -> list[str]:
    """Steps counted by class, op and type, each group with its first step's reasons as an example."""
    groups: dict[tuple[Risk, str, str], list[Judgement]] = {}
    for j in rows:
        groups.setdefault((j.risk, j.step.op, j.step.type), []).append(j)
    lines = ["| risk | op | type | steps | for example |", "|---|---|---|---:|---|"]
    lines += [
        f"| {risk.label} | {op} | `{type_}` | {len(found)} | `{found[0].step.name}`: {'; '.join(found[0].reasons).replace('|', '/')} |"
        for (risk, op, type_), found in sorted(groups.items(), key=lambda item: (-item[0][0], item[0][1], item[0][2]))
    ]
    return lines


def markdown(report: RiskReport, max_rows: int | None = None) -> str:
    """The report as a reviewer reads it: the worst class, then one row per step that is not safe
    or has a remark, worst first; past `max_rows` rows, the rest folded and counted by class, op
    and type (a deleted stack lists hundreds of steps, more than a pull-request comment holds).
    """
    counts = report.as_json()["counts"]
    lines = [
        f"**Risk of stack `{report.stack or '?'}`: {report.worst.label}** "
        + "(" + ", ".join(f"{n} {label}" for label, n in counts.items() if n) + ")",
        "",
    ]
    rows = [j for j in report.listed if j.risk is not Risk.SAFE or j.reasons]
    if not rows:
        lines.append("No step needs review.")
        return "\n".join(lines)
    shown, rest = (rows, []) if max_rows is None else (rows[:max_rows], rows[max_rows:])
    lines += ["| risk | op | resource | type | why |", "|---|---|---|---|---|", *map(_row, shown)]
    if rest:
        lines += ["", f"<details><summary>{len(rest)} more step(s), counted by class, op and type</summary>", "", *_grouped(rest), "", "</details>"]
    return "\n".join(lines)


def render(report: RiskReport, fmt: str) -> str:
    """The report in `markdown` or `json`."""
    return json.dumps(report.as_json(), indent=2) if fmt == "json" else markdown(report)


EXIT_CODES = """exit codes: 0 the report is written (and, with --fail-on, no step reaches that class);
1 with --fail-on LEVEL, some step is LEVEL or worse; 2 a file is missing or not a plan or a preview."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `risk` subcommand's arguments."""
    parser.description = (__doc__ or "").split("\n\n", 1)[0]
    parser.epilog = EXIT_CODES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("plan", type=Path, help="a `pulumi preview --json` digest, or the head's offline plan")
    parser.add_argument("--base", type=Path, help="the base branch's offline plan: the change is the difference between the two")
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    parser.add_argument("--fail-on", choices=[r.label for r in Risk if r is not Risk.SAFE],
                        help="exit 1 when a step is of this class or worse (the pull-request gate)")


def command(args: argparse.Namespace) -> int:
    """Runs `python -m review risk`; see EXIT_CODES."""
    try:
        report = classify(load_change(args.plan, args.base))
    except (OSError, ValueError) as error:
        print(f"risk: {error}", file=sys.stderr)
        return 2
    print(render(report, args.format))
    if args.fail_on and report.worst >= Risk[args.fail_on.upper()]:
        print(f"risk: worst step is {report.worst.label}, at or above --fail-on {args.fail_on}", file=sys.stderr)
        return 1
    return 0
