"""The cost report (review/cost.py) and its price tables (review/prices/)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from review.__main__ import main
from review.cost import (
    CostReport,
    PriceTable,
    Usage,
    estimate,
    price_tables,
    sizing_for,
    to_json,
    to_markdown,
)
from review.prices import refresh
from review.steps import UNKNOWN, Change, change_between_plans, change_from_digest
from tests.unit.conftest import plan_of

ROOT = Path(__file__).resolve().parents[2]
PREVIEWS = Path(__file__).resolve().parent / "previews"
HOURS = 730


def _prod() -> CostReport:
    change = change_from_digest(plan_of("prod"))
    return estimate(change, sizing=sizing_for(change, None))


def _by_name(report: CostReport) -> dict[str, float]:
    return {r.urn.rsplit("::", 1)[-1]: r.monthly_usd for r in report.resources}


def _sum(costs: Mapping[str, float], *names: str) -> float:
    return round(sum(costs[name] for name in names), 2)


def _digest(*steps: dict[str, Any], config: dict[str, str] | None = None) -> Change:
    """A `pulumi preview --json` digest of a stack `s` of project `p` (states in the engine's schema)."""
    return change_from_digest({"config": config or {"aws:region": "us-east-1"}, "steps": list(steps), "changeSummary": {}})


def _state(type_: str, name: str, inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": type_, "urn": f"urn:pulumi:s::p::{type_}::{name}", "custom": True, "inputs": inputs, "outputs": {}, "parent": "", **extra}


def _create(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    state = _state(type_, name, inputs)
    return {"op": "create", "urn": state["urn"], "newState": state}


def test_prod_plan_against_the_seed_s_10_2_breakdown() -> None:
    """The prod plan priced, line by line against the original architecture's cost breakdown (design §8.5; AWS, us-east-1, $2,810/month).
    Seed's figure → ours (USD/month), and why they differ:

    - 3× r6i.2xlarge (Patroni): 1,260 → 1,103.76. The seed's figure is $0.575/h; AWS's on-demand
      list price of an r6i.2xlarge in us-east-1 is $0.504/h × 730 h.
    - 3× t3.xlarge (etcd): 300 → 364.42 ($0.1664/h × 730 h × 3); the seed is below the list price.
    - 2× t3.large (app): 150 → 121.47 ($0.0832/h × 730 h × 2); the seed is above it.
    - 6 TB gp3 (PostgreSQL): 480 → 964.32. The seed prices 6,000 GB at $0.08 and nothing else; the
      stack provisions 3 × (2,048 GB data + 500 GB WAL), and gp3 bills IOPS above 3,000 ($0.005
      each: 13,000 + 3,000 per worker) and MiB/s above 125 ($0.04 each: 565 + 375).
    - 5 TB gp3 (backups): 400 → 414.60: 5,120 GiB (not 5,000) and 250 MiB/s (125 above the included).
    - 500 GB S3 Standard-IA (offsite): 10 → 306.40. The seed's 500 GB would be $6.25; here the
      offsite repository after 12 months: weekly and monthly fulls of a half-full 2 TB database at 0.3
      compression moving through Standard, Standard-IA and Glacier IR (the stack's lifecycle), in two
      buckets (the copy in us-west-2, design §4.4), plus $0.02/GB of replication.
    - Data transfer, 1 TB: 90 → 0. No internet egress assumed: the load balancer is internal and the
      clients are in the VPC; a usage file with internetEgressGbPerMonth 1000 gives the seed's $90
      (test_usage_file_and_its_assumptions).
    - NAT gateways × 3: 98 → 112.05: $0.045/h × 730 h × 3 = $98.55, plus 100 GB/month processed per
      gateway at $0.045 (usage).
    - Network load balancer: 22 → 20.80: $0.0225/h × 730 h = $16.43, plus one NLCU at $0.006/h (usage).
    - Not in the seed: 358.61. Root volumes 169.60 (3 × 500 GB, 6 × 100 GB, 20 GB of gp3), the
      backup node's t3.large 60.74, the bastion's t3.micro 7.59, 4 public IPv4 addresses 14.60
      ($0.005/h each since February 2024: 3 NAT, the bastion), 3 interface VPC endpoints in 3 zones
      66.00, detailed monitoring of 10 machines 21.00, the flow-log group 16.62, 2 KMS keys 2.06,
      2 ECR repositories 0.40.
    - Total: 2,810 → 3,766.43, inside the original architecture's own estimate for AWS (design §8.5) ($3,500-4,500/month) and
      under the stack's budget ($4,500).
    """
    report = _prod()
    costs = _by_name(report)
    workers = [f"prod-compute-worker-{n}" for n in (1, 2, 3)]
    managers = [f"prod-compute-manager-{n}" for n in (1, 2, 3)]
    apps = ["prod-compute-app-1", "prod-compute-app-2"]
    instance_hours = {r.urn.rsplit("::", 1)[-1]: r.after.lines[0].monthly_usd for r in report.resources if r.type == "aws:ec2/instance:Instance" and r.after}

    assert _sum(instance_hours, *workers) == round(3 * 0.504 * HOURS, 2) == 1103.76
    assert _sum(instance_hours, *managers) == round(3 * 0.1664 * HOURS, 2) == 364.42
    assert _sum(instance_hours, *apps) == round(2 * 0.0832 * HOURS, 2) == 121.47

    data = 2048 * 0.08 + (16000 - 3000) * 0.005 + (690 - 125) * 0.04
    wal = 500 * 0.08 + (6000 - 3000) * 0.005 + (500 - 125) * 0.04
    volumes = [f"prod-storage-worker-{n}-{kind}" for n in (1, 2, 3) for kind in ("data", "wal")]
    assert _sum(costs, *volumes) == round(3 * (data + wal), 2) == 964.32
    assert 3 * 2000 * 0.08 == 480  # the seed's "6 TB" line is 6,000 GB at the gp3 GB price alone
    assert costs["prod-storage-backup-1-backups"] == pytest.approx(5120 * 0.08 + (250 - 125) * 0.04) == 414.60
    assert 5000 * 0.08 == 400  # the seed's "5 TB" backups line

    offsite = _sum(costs, "prod-storage-backups", "prod-storage-backups-replica", "prod-storage-backups-replication")
    growth, month = 2048 * 0.5 * 0.3 * (52 / 12 + 1), 365 / 12  # fulls of a half-full data volume, 0.3 compressed, Sundays and the 1st
    bucket = growth * (0.023 * 30 / month + 0.0125 * 60 / month + 0.004 * (12 - 90 / month))  # by age at month 12: Standard, IA, Glacier IR
    assert offsite == round(2 * bucket + growth * 0.02, 2) == 306.40
    assert 500 * 0.0125 == 6.25  # what the seed's 500 GB of Standard-IA costs (it says $10)

    nats = [f"prod-network-nat-us-east-1{zone}" for zone in "abc"]
    assert _sum(costs, *nats) == round(3 * (0.045 * HOURS + 100 * 0.045), 2) == 112.05
    assert round(3 * 0.045 * HOURS) == 99 and pytest.approx(98.55) == 3 * 0.045 * HOURS  # the seed's $98
    assert costs["prod-endpoint-nlb"] == pytest.approx(0.0225 * HOURS + 0.006 * HOURS)

    in_seed = {*workers, *managers, *apps, *volumes, "prod-storage-backup-1-backups", "prod-storage-backups", "prod-storage-backups-replica",
               "prod-storage-backups-replication", *nats, "prod-endpoint-nlb"}
    # the instances' lines beyond their hours (root volumes, monitoring) are among what the seed leaves out
    beyond_instance_hours = sum(costs[name] - instance_hours[name] for name in (*workers, *managers, *apps))
    not_in_seed = sum(cost for name, cost in costs.items() if name not in in_seed) + beyond_instance_hours
    assert round(not_in_seed, 2) == round(169.60 + 60.74 + 7.59 + 14.60 + 66.00 + 21.00 + 16.62 + 2.06 + 0.40, 2) == 358.61
    assert round(report.monthly_usd, 2) == 3766.43
    assert 3500 <= report.monthly_usd <= 4500  # the original architecture's AWS estimate (design §8.5); the stack's budget is 4,500
    assert report.delta_usd == report.monthly_usd  # a new stack: all of it is the change


def test_published_list_prices_to_the_cent() -> None:
    """Public estimates of single resources, as AWS's price pages and calculator give them for
    us-east-1 at 730 hours a month: an m6i.xlarge $0.192/h → $140.16; an r6i.2xlarge $0.504/h →
    $367.92; a t3.micro $0.0104/h → $7.59; a NAT gateway $0.045/h → $32.85; an NLB $0.0225/h →
    $16.43; 1,000 GB of gp3 at $0.08 → $80.00 (3,000 IOPS and 125 MiB/s included).
    """
    change = _digest(
        _create("aws:ec2/instance:Instance", "m6i", {"instanceType": "m6i.xlarge", "rootBlockDevice": {"volumeSize": 0, "volumeType": "gp3"}}),
        _create("aws:ec2/instance:Instance", "r6i", {"instanceType": "r6i.2xlarge", "rootBlockDevice": {"volumeSize": 0, "volumeType": "gp3"}}),
        _create("aws:ec2/instance:Instance", "t3", {"instanceType": "t3.micro", "rootBlockDevice": {"volumeSize": 0, "volumeType": "gp3"}}),
        _create("aws:ebs/volume:Volume", "gp3", {"type": "gp3", "size": 1000, "iops": 3000, "throughput": 125, "availabilityZone": "us-east-1a"}),
    )
    costs = _by_name(estimate(change))
    assert round(costs["m6i"], 2) == 140.16
    assert round(costs["r6i"], 2) == 367.92
    assert round(costs["t3"], 2) == 7.59
    assert round(costs["gp3"], 2) == 80.00
    nat = _by_name(estimate(_digest(_create("aws:ec2/natGateway:NatGateway", "nat", {})), Usage(nat_gb_per_month=0)))
    assert round(nat["nat"], 2) == 32.85
    nlb = _by_name(estimate(_digest(_create("aws:lb/loadBalancer:LoadBalancer", "nlb", {"loadBalancerType": "network"})), Usage(load_balancer_lcu=0)))
    assert round(nlb["nlb"], 2) == 16.43


def _with_workers(machine_type: str, tmp_path: Path) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    document["config"]["dpc:nodes"] = {"workers": {"count": 3, "machineType": machine_type, "rootVolumeGb": 100}}
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(document))
    return plan_of("prod", tmp_path)


def test_resizing_the_workers_costs_the_price_difference(tmp_path: Path) -> None:
    """Workers r6i.2xlarge → r6i.4xlarge, planned offline before and after: (1.008 − 0.504) USD/h ×
    3 × 730 h = 1,103.76 USD/month more. The program's `ignoreChanges` leaves running machines as
    they are (README: Changing machines), so the plain change costs nothing yet and shows the
    1,103.76 as pending; applied (the option lifted, as `pulumi up --replace` applies it), it is the
    delta.
    """
    base, head = plan_of("prod"), _with_workers("r6i.4xlarge", tmp_path)
    held_back = estimate(change_between_plans(base, head))
    workers = [r for r in held_back.resources if r.type == "aws:ec2/instance:Instance" and "worker" in r.urn]
    assert len(workers) == 3
    assert all(w.delta_usd == 0 and w.pending_usd == pytest.approx((1.008 - 0.504) * HOURS) for w in workers)
    assert round(held_back.delta_usd, 2) == 0
    assert round(held_back.pending_usd, 2) == 1103.76

    applied = copy.deepcopy(head)
    for step in applied["steps"]:
        step["newState"].pop("ignoreChanges", None)
    report = estimate(change_between_plans(base, applied))
    assert round(report.delta_usd, 2) == 1103.76
    assert round(report.pending_usd, 2) == 0
    assert not report.unpriced


def test_raising_the_data_volumes_iops_and_deleting_the_stack(tmp_path: Path) -> None:
    """The data volumes' IOPS 16,000 → 20,000 (EBS modifies them in place): 4,000 × $0.005 × 3
    volumes = $60.00 more a month, nothing else changes. Deleting the stack takes its whole cost off.
    """
    document = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    document["config"]["dpc:storage"] = {"data": {"sizeGb": 2048, "iops": 20000, "throughputMbps": 690}}
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(document))
    report = estimate(change_between_plans(plan_of("prod"), plan_of("prod", tmp_path)))
    changed = {r.urn.rsplit("::", 1)[-1]: round(r.delta_usd, 2) for r in report.resources if round(r.delta_usd, 2)}
    assert changed == {f"prod-storage-worker-{n}-data": 20.00 for n in (1, 2, 3)}
    assert round(report.delta_usd, 2) == 60.00

    deletion = change_between_plans(plan_of("prod"), {"steps": []})
    gone = estimate(deletion, sizing=sizing_for(deletion, None))
    assert {r.op for r in gone.resources} == {"delete"}
    assert round(gone.delta_usd, 2) == -round(_prod().monthly_usd, 2) == -3766.43
    assert gone.monthly_usd == 0


def test_held_back_properties_are_priced_as_deployed_and_shown_as_pending() -> None:
    """A machine type `ignoreChanges` holds back: the cloud keeps running the old type (no delta),
    the difference shows as pending, due when the machine is replaced.
    """
    old = _state("aws:ec2/instance:Instance", "w", {"instanceType": "r6i.2xlarge", "rootBlockDevice": {"volumeSize": 100, "volumeType": "gp3"}})
    new = copy.deepcopy(old) | {"ignoreChanges": ["instanceType"]}
    new["inputs"]["instanceType"] = "r6i.4xlarge"
    report = estimate(_digest({"op": "same", "urn": old["urn"], "oldState": old, "newState": new}))
    assert report.delta_usd == 0
    assert round(report.pending_usd, 2) == round((1.008 - 0.504) * HOURS, 2)
    assert "Once the machines awaiting replacement are replaced" in to_markdown(report)


def test_a_real_preview_digest_prices_each_step_against_its_old_state() -> None:
    """tests/unit/previews/aws-update.json (another program's stack): the volume's IOPS raised
    3,000 → 6,000 costs 3,000 × $0.005 = $15.00; the instance replaced with the same type changes
    nothing; the new log group costs its usage; the deleted bucket held nothing (no usage given);
    the 39 unchanged resources the digest does not list are counted and said.
    """
    change = change_from_digest(json.loads((PREVIEWS / "aws-update.json").read_text()))
    report = estimate(change)
    deltas = {r.urn.rsplit("::", 1)[-1]: round(r.delta_usd, 2) for r in report.resources}
    assert deltas["db-data"] == 15.00
    assert deltas["app-1"] == 0
    assert deltas["audit"] == round(30 * 0.50 + 30 * 0.15 * (30 / (365 / 12)) * 0.03, 2)
    assert deltas["exports"] == 0
    assert report.unlisted_same == 39
    assert "39 unchanged resource(s) the preview does not list" in to_markdown(report)
    assert sizing_for(change, None) is None  # not this program's stack: no stack file is read for it
    with_steps = estimate(change_from_digest(json.loads((PREVIEWS / "aws-update-replacement-steps.json").read_text())))
    assert to_json(with_steps) == to_json(report)  # --show-replacement-steps changes nothing


def test_a_plan_the_program_did_not_write_lists_what_it_cannot_price() -> None:
    """tests/unit/previews/foreign-stack.json (GCP, Azure, Docker, Snowflake): the e2-standard-4 →
    e2-standard-8 change in europe-west1 costs 4 vCPU × $0.023992 + 16 GB × $0.003215 an hour more;
    the deleted 500 GB pd-ssd saves $85.00; the Docker secret is free; the VM in a region the Azure
    table lacks, the Snowflake warehouse, the multi-region bucket and the topic (under an op no engine
    emits) are listed as unpriced with their reason, none dropped.
    """
    report = estimate(change_from_digest(json.loads((PREVIEWS / "foreign-stack.json").read_text())))
    deltas = {r.urn.rsplit("::", 1)[-1]: round(r.delta_usd, 2) for r in report.resources}
    assert deltas["etl"] == round((4 * 0.023992 + 16 * 0.003215) * HOURS, 2) == 107.61
    assert deltas["warehouse"] == -85.00
    assert next(r for r in report.resources if r.type == "docker:index/secret:Secret").status == "free"
    reasons = {r.urn.rsplit("::", 1)[-1]: r.unpriced_reason for r in report.unpriced}
    assert set(reasons) == {"reporting", "bi", "raw", "events"}
    assert "northeurope" in reasons["reporting"] and "westeurope" in reasons["reporting"]
    assert "snowflake:index/warehouse:Warehouse is not in the price tables" in reasons["bi"]
    assert "'eu'" in reasons["raw"]
    assert "gcp:pubsub/topic:Topic" in reasons["events"]
    assert [u["urn"].rsplit("::", 1)[-1] for u in to_json(report)["unpriced"]] == ["reporting", "bi", "raw", "events"]


def test_unknown_values_are_said_never_guessed() -> None:
    """A priced property the preview does not know (the engine's sentinel, or the offline plan's
    spelling of it) leaves the resource unpriced with that reason.
    """
    for unknown in (UNKNOWN, "[unknown]"):
        report = estimate(_digest(
            _create("aws:ec2/instance:Instance", "i", {"instanceType": unknown}),
            _create("aws:ebs/volume:Volume", "v", {"type": "gp3", "size": unknown, "availabilityZone": "us-east-1a"}),
        ))
        reasons = {r.urn.rsplit("::", 1)[-1]: r.unpriced_reason for r in report.unpriced}
        assert reasons["i"].startswith("instanceType is not known until the change is applied")
        assert reasons["v"].startswith("size is not known until the change is applied")
        assert report.monthly_usd == 0


def test_a_state_that_does_not_say_it_is_custom_is_still_listed() -> None:
    """A hand-made digest may leave `custom` out: its resources are priced or listed, never skipped
    as components (only an explicit `custom: false` and the stack are).
    """
    state = _state("aws:ec2/instance:Instance", "bare", {"instanceType": "t3.micro", "rootBlockDevice": {"volumeSize": 8, "volumeType": "gp3"}})
    del state["custom"]
    odd = _state("example:index/thing:Thing", "odd", {})
    del odd["custom"]
    report = estimate(_digest({"op": "create", "urn": state["urn"], "newState": state}, {"op": "create", "urn": odd["urn"], "newState": odd}))
    assert round(report.monthly_usd, 2) == round(0.0104 * HOURS + 8 * 0.08, 2)
    assert [r.urn.rsplit("::", 1)[-1] for r in report.unpriced] == ["odd"]


def test_every_type_the_shipped_stacks_create_is_priced_or_free() -> None:
    report = _prod()
    assert not report.unpriced
    priced = {r.type for r in report.resources if r.status == "priced"}
    assert {"aws:ec2/instance:Instance", "aws:ebs/volume:Volume", "aws:ec2/natGateway:NatGateway", "aws:lb/loadBalancer:LoadBalancer",
            "aws:s3/bucket:Bucket", "aws:kms/key:Key", "aws:cloudwatch/logGroup:LogGroup", "aws:ecr/repository:Repository",
            "aws:ec2/eip:Eip", "aws:ec2/vpcEndpoint:VpcEndpoint"} <= priced
    for stack in ("staging", "dev", "gcp-dev", "azure-dev"):
        change = change_from_digest(plan_of(stack))
        assert not estimate(change, sizing=sizing_for(change, None)).unpriced, stack


def test_everything_azure_prod_creates_is_priced_or_free() -> None:
    change = change_from_digest(plan_of("azure-prod"))
    report = estimate(change, sizing=sizing_for(change, None))
    assert not report.unpriced, [(r.type, r.unpriced_reason) for r in report.unpriced]
    priced = {r.type for r in report.resources if r.status == "priced"}
    assert {"azure-native:compute:VirtualMachine", "azure-native:compute:Disk", "azure-native:network:NatGateway", "azure-native:network:LoadBalancer",
            "azure-native:network:PublicIPAddress", "azure-native:storage:StorageAccount", "azure-native:keyvault:Key", "azure-native:keyvault:Secret",
            "azure-native:containerregistry:Registry", "azure-native:network:FlowLog"} <= priced


def test_azure_backups_are_priced_in_gzrs_tiers_with_their_geo_copy() -> None:
    change = change_from_digest(plan_of("azure-prod"))
    report = estimate(change, sizing=sizing_for(change, None))
    (account,) = [r for r in report.resources if r.urn.endswith("-storage-backups")]
    labels = [line.label for line in account.after.lines]
    assert [label.split(":")[0] for label in labels] == ["Hot", "Cool", "Cold", "geo-replication transfer"]
    rates = price_tables()["azure"].regions["eastus2"]["blobGbMonthBySku"]["Standard_GZRS"]
    assert f"× {rates['Cold']:g} USD/GB-month" in labels[2]


def test_an_azure_premium_ssd_v2_disk_pays_for_iops_and_throughput_above_the_included() -> None:
    disk = {"location": "eastus2", "sku": {"name": "PremiumV2_LRS"}, "diskSizeGB": 2048, "diskIOPSReadWrite": 7500, "diskMBpsReadWrite": 165}
    report = estimate(_digest(_create("azure-native:compute:Disk", "data", disk)))
    rates = price_tables()["azure"].regions["eastus2"]["premiumSsdV2"]
    expected = 2048 * rates["gbMonth"] + (7500 - 3000) * rates["iopsMonth"] + (165 - 125) * rates["mibpsMonth"]
    assert round(report.monthly_usd, 4) == round(expected, 4)


def test_an_azure_hsm_key_of_3072_bits_is_an_advanced_key_and_each_rotation_is_billed() -> None:
    key = {"location": "eastus2", "properties": {"kty": "RSA-HSM", "keySize": 3072, "rotationPolicy": {
        "lifetimeActions": [{"action": {"type": "rotate"}, "trigger": {"timeAfterCreate": "P30D"}}]}}}
    report = estimate(_digest(_create("azure-native:keyvault:Key", "key", key)))
    labels = [line.label for line in report.resources[0].after.lines]
    assert labels[0] == "HSM-protected advanced key: 5.00 USD/month"
    assert any(label.startswith("scheduled rotation every 30 days") for label in labels), labels


def test_gcp_prod_lists_only_its_dual_region_bucket_as_unpriced() -> None:
    """The price table has regional Cloud Storage only (its notes say so): the geo copy's dual-region
    bucket is listed with why, never priced on a guess; everything else of GCP prod is priced or free.
    """
    change = change_from_digest(plan_of("gcp-prod"))
    report = estimate(change, sizing=sizing_for(change, None))
    assert [(r.type, "multi- or dual-region" in r.unpriced_reason) for r in report.unpriced] == [("gcp:storage/bucket:Bucket", True)]
    priced = {r.type for r in report.resources if r.status == "priced"}
    assert {"gcp:compute/instance:Instance", "gcp:compute/disk:Disk", "gcp:compute/routerNat:RouterNat", "gcp:kms/cryptoKey:CryptoKey",
            "gcp:compute/forwardingRule:ForwardingRule", "gcp:logging/projectBucketConfig:ProjectBucketConfig"} <= priced


def test_a_gcp_backup_bucket_is_priced_in_gcs_classes() -> None:
    change = change_from_digest(plan_of("gcp-dev"))
    report = estimate(change, sizing=sizing_for(change, None))
    bucket = next(r for r in report.resources if r.type == "gcp:storage/bucket:Bucket")
    assert bucket.after is not None
    assert [line.label.split(":")[0] for line in bucket.after.lines] == ["STANDARD", "NEARLINE", "ARCHIVE"]


def test_the_gcp_and_azure_equivalents_of_seed_1_3_are_priced() -> None:
    """The GCP and Azure machine types and disks of design §9.2: n2-highmem-8 in us-central1 is 8 × $0.031611
    + 64 × $0.004237 an hour, less N2's 20 % sustained-use discount for a full month; a 2 TB regional
    pd-ssd $0.34/GB; Standard_E8s_v5 in eastus $0.504/h; a 2 TiB Premium SSD is a P40.
    """
    change = change_from_digest({"steps": [
        _create("gcp:compute/instance:Instance", "n2", {"machineType": "n2-highmem-8", "zone": "us-central1-a",
                                                        "bootDisk": {"initializeParams": {"size": 100, "type": "pd-balanced"}}}),
        _create("gcp:compute/regionDisk:RegionDisk", "pd", {"type": "pd-ssd", "size": 2048, "region": "us-central1"}),
        _create("azure-native:compute:VirtualMachine", "e8", {
            "location": "eastus", "hardwareProfile": {"vmSize": "Standard_E8s_v5"},
            "storageProfile": {"osDisk": {"diskSizeGB": 128, "managedDisk": {"storageAccountType": "Premium_LRS"}}},
        }),
        _create("azure-native:compute:Disk", "p40", {"location": "eastus", "sku": {"name": "Premium_LRS"}, "diskSizeGB": 2048}),
        _create("azure-native:network:PrivateEndpoint", "pe", {"location": "eastus"}),
        _create("azure-native:network:NatGateway", "nat", {"location": "eastus"}),
        _create("gcp:compute/address:Address", "ip", {"region": "us-central1"}),
    ]})
    costs = _by_name(estimate(change))
    assert round(costs["n2"], 2) == round((8 * 0.031611 + 64 * 0.004237) * HOURS * 0.8 + 100 * 0.10, 2)
    assert round(costs["pd"], 2) == round(2048 * 0.34, 2)
    assert round(costs["e8"], 2) == round(0.504 * HOURS + 19.71, 2)
    assert costs["p40"] == 259.05
    assert round(costs["pe"], 2) == round(0.01 * HOURS + 10 * 0.01, 2) == 7.40  # an endpoint's hours and its 10 GB (usage)
    assert round(costs["nat"], 2) == round(0.045 * HOURS + 100 * 0.045, 2)
    assert round(costs["ip"], 2) == 3.65


def test_usage_file_and_its_assumptions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A usage file replaces the defaults, and each assumption is printed next to its number; the
    seed's 1 TB of data transfer comes to its $90 at $0.09/GB. A misspelt key is an error (exit 2).
    """
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(plan_of("prod")))
    usage = tmp_path / "usage.json"
    usage.write_text(json.dumps({"natGbPerMonth": 1000, "internetEgressGbPerMonth": 1000}))
    assert main(["cost", str(plan), "--usage", str(usage), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    nat = next(r for r in report["resources"] if r["urn"].endswith("::prod-network-nat-us-east-1a"))
    lines = {line["label"]: line for line in nat["after"]["lines"]}
    processed = lines["data processed: 1000 GB × 0.045 USD"]
    assert processed["monthlyUsd"] == 45.00
    assert processed["assumption"] == "1000 GB/month through this gateway (usage natGbPerMonth)"
    egress = sum(line["monthlyUsd"] for r in report["resources"] if r["after"] for line in r["after"]["lines"] if line["label"].startswith("internet egress"))
    assert round(egress, 2) == 90.00
    assert "1000 GB/month through this gateway (usage natGbPerMonth)" in report["assumptions"]

    assert main(["cost", str(plan), "--usage", str(usage)]) == 0
    markdown = capsys.readouterr().out
    (row,) = [line for line in markdown.splitlines() if line.startswith("| prod-network-nat-us-east-1a ")]
    assert "data processed: 1000 GB × 0.045 USD = 45.00<br>" in row
    assert "<br>*assumed: 1000 GB/month through this gateway (usage natGbPerMonth)*" in row

    usage.write_text(json.dumps({"natGbPerMonht": 1}))
    assert main(["cost", str(plan), "--usage", str(usage)]) == 2
    assert "unknown usage key(s) natGbPerMonht" in capsys.readouterr().err


def test_json_carries_the_contract_and_components_total_their_resources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, head = tmp_path / "base.json", tmp_path / "head.json"
    base.write_text(json.dumps(plan_of("prod")))
    smaller = copy.deepcopy(plan_of("prod"))
    smaller["steps"] = [s for s in smaller["steps"] if not s["urn"].endswith("::prod-compute-app-2")]
    head.write_text(json.dumps(smaller))
    assert main(["cost", str(head), "--base", str(base), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"monthlyUsd", "deltaUsd", "resources", "unpriced"} <= report.keys()
    assert all({"urn", "type", "monthlyUsd", "priced"} <= r.keys() for r in report["resources"])
    app = next(r for r in report["resources"] if r["urn"].endswith("::prod-compute-app-2"))
    assert app["op"] == "delete" and app["monthlyUsd"] == 0 and app["deltaUsd"] == -app["baseMonthlyUsd"] < 0
    assert report["deltaUsd"] == app["deltaUsd"]
    compute = next(c for c in report["components"] if c["type"] == "dpc:compute:Compute")
    assert compute["monthlyUsd"] == round(sum(r["monthlyUsd"] for r in report["resources"] if r["component"] == compute["urn"]), 2) > 0
    assert compute["deltaUsd"] == app["deltaUsd"]


def test_every_price_table_says_where_its_figures_come_from_and_when() -> None:
    tables = price_tables()
    assert set(tables) == {"aws", "gcp", "azure"}
    for cloud, table in tables.items():
        raw = json.loads((ROOT / "review" / "prices" / f"{cloud}.json").read_text())
        assert isinstance(table, PriceTable) and table.as_of == raw["asOf"]
        assert "as published by" in table.basis and "on-demand" in table.basis.lower().replace("pay-as-you-go", "on-demand")
        assert all(url.startswith("https://") or "'" in url for url in raw["sources"].values())
    assert "us-east-1" in tables["aws"].regions and "us-west-2" in tables["aws"].regions  # the regions the shipped stacks use


def test_a_400_resource_plan_is_costed_quickly() -> None:
    """The tables load once; pricing a 400-resource change takes milliseconds, far inside the
    benchmark's one second for cost and risk together (benchmarks/review_speed.py measures it).
    """
    plan = plan_of("prod")
    steps = (plan["steps"] * 2)[:400]
    change = change_from_digest({"steps": [s | {"urn": f"{s['urn']}-{n}"} for n, s in enumerate(steps)]})
    estimate(change)  # the tables, read once
    import time  # noqa: PLC0415

    started = time.perf_counter()
    estimate(change)
    assert time.perf_counter() - started < 0.5


# --- refresh.py: the parsing of the providers' price lists, on samples shaped as documented ------


def test_refresh_reads_an_aws_offer_file() -> None:
    """An offer file of the Price List Bulk API: products by SKU, OnDemand terms with price
    dimensions; usage types carry the region's prefix outside us-east-1 (USW2- for us-west-2).
    """
    offer = {
        "formatVersion": "v1.0", "offerCode": "AmazonEC2", "publicationDate": "2026-11-20T00:00:00Z",
        "products": {
            "SKU1": {"sku": "SKU1", "productFamily": "Compute Instance", "attributes": {
                "instanceType": "m6i.xlarge", "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
                "capacitystatus": "Used", "licenseModel": "No License required", "usagetype": "USW2-BoxUsage:m6i.xlarge"}},
            "SKU2": {"sku": "SKU2", "productFamily": "Compute Instance", "attributes": {
                "instanceType": "m6i.xlarge", "operatingSystem": "Windows", "tenancy": "Shared", "preInstalledSw": "NA",
                "capacitystatus": "Used", "licenseModel": "No License required", "usagetype": "USW2-BoxUsage:m6i.xlarge"}},
            "SKU3": {"sku": "SKU3", "productFamily": "NAT Gateway", "attributes": {"usagetype": "USW2-NatGateway-Hours"}},
            "SKU4": {"sku": "SKU4", "productFamily": "System Operation", "attributes": {"volumeApiName": "gp3", "usagetype": "USW2-EBS:VolumeP-IOPS.gp3"}},
        },
        "terms": {"OnDemand": {
            "SKU1": {"SKU1.JRTCKXETXF": {"priceDimensions": {"SKU1.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "beginRange": "0", "endRange": "Inf", "pricePerUnit": {"USD": "0.1920000000"}}}}},
            "SKU2": {"SKU2.JRTCKXETXF": {"priceDimensions": {"SKU2.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "beginRange": "0", "endRange": "Inf", "pricePerUnit": {"USD": "0.3760000000"}}}}},
            "SKU3": {"SKU3.JRTCKXETXF": {"priceDimensions": {"SKU3.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "beginRange": "0", "endRange": "Inf", "pricePerUnit": {"USD": "0.0450000000"}}}}},
            "SKU4": {"SKU4.JRTCKXETXF": {"priceDimensions": {"SKU4.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "IOPS-Mo", "beginRange": "0", "endRange": "Inf", "pricePerUnit": {"USD": "0.0050000000"}}}}},
        }},
    }
    figures = refresh.aws_figures(offer, "us-west-2", refresh.aws_rules(["m6i.xlarge"]))
    assert figures == {("instanceHourly", "m6i.xlarge"): 0.192, ("natGateway", "hourly"): 0.045, ("ebs", "gp3", "iopsMonth"): 0.005}


def test_refresh_reads_gcp_catalog_skus_and_azure_retail_items() -> None:
    skus = [
        {"name": "services/6F81-5844-456A/skus/A", "skuId": "A", "description": "N2 Instance Core running in Americas",
         "category": {"serviceDisplayName": "Compute Engine", "resourceFamily": "Compute", "resourceGroup": "N2Standard", "usageType": "OnDemand"},
         "serviceRegions": ["us-central1", "us-east1"],
         "pricingInfo": [{"pricingExpression": {"usageUnit": "h", "tieredRates": [
             {"startUsageAmount": 0, "unitPrice": {"currencyCode": "USD", "units": "0", "nanos": 31611000}}]}}]},
        {"name": "services/6F81-5844-456A/skus/B", "skuId": "B", "description": "N2 Instance Core running in Americas",
         "category": {"usageType": "Preemptible"}, "serviceRegions": ["us-central1"],
         "pricingInfo": [{"pricingExpression": {"tieredRates": [{"unitPrice": {"units": "0", "nanos": 7660000}}]}}]},
        {"name": "services/6F81-5844-456A/skus/C", "skuId": "C", "description": "Regional SSD backed PD Capacity in Iowa",
         "category": {"usageType": "OnDemand"}, "serviceRegions": ["us-central1"],
         "pricingInfo": [{"pricingExpression": {"usageUnit": "GiBy.mo", "tieredRates": [{"unitPrice": {"units": "0", "nanos": 340000000}}]}}]},
    ]
    assert refresh.gcp_figures(skus, "us-central1") == {("machineFamilies", "n2", "vcpuHour"): 0.031611, ("regionalDiskGbMonth", "pd-ssd"): 0.34}
    items = [
        {"currencyCode": "USD", "retailPrice": 0.504, "unitPrice": 0.504, "armRegionName": "eastus", "meterName": "E8s v5",
         "productName": "Virtual Machines Esv5 Series", "skuName": "E8s v5", "serviceName": "Virtual Machines", "armSkuName": "Standard_E8s_v5",
         "type": "Consumption", "unitOfMeasure": "1 Hour"},
        {"retailPrice": 0.1008, "meterName": "E8s v5 Spot", "productName": "Virtual Machines Esv5 Series", "serviceName": "Virtual Machines",
         "armSkuName": "Standard_E8s_v5", "type": "Consumption", "unitOfMeasure": "1 Hour"},
        {"retailPrice": 0.872, "meterName": "E8s v5", "productName": "Virtual Machines Esv5 Series Windows", "serviceName": "Virtual Machines",
         "armSkuName": "Standard_E8s_v5", "type": "Consumption", "unitOfMeasure": "1 Hour"},
        {"retailPrice": 259.05, "meterName": "P40 LRS Disk", "productName": "Premium SSD Managed Disks", "skuName": "P40 LRS",
         "serviceName": "Storage", "type": "Consumption", "unitOfMeasure": "1/Month"},
        {"retailPrice": 0.045, "meterName": "Standard Gateway", "productName": "NAT Gateway", "serviceName": "Virtual Network",
         "type": "Consumption", "unitOfMeasure": "1 Hour"},
    ]
    figures = refresh.azure_figures(items, ["Standard_E8s_v5"], ["P30", "P40"])
    assert figures == {("vmHourly", "Standard_E8s_v5"): 0.504, ("premiumSsdTiers", 1, 2): 259.05, ("natGateway", "hourly"): 0.045}


def test_refresh_writes_what_it_fetched_and_names_what_it_kept(tmp_path: Path) -> None:
    table = {"cloud": "azure", "asOf": "2025-01-01", "basis": "old", "hoursPerMonth": 730,
             "regions": {"eastus": {"vmHourly": {"Standard_D2s_v5": 0.096}, "premiumSsdTiers": [["P40", 2048, 259.05]]}}}
    (tmp_path / "azure.json").write_text(json.dumps(table))

    def fetch(region: str, _table: Mapping[str, Any]) -> Mapping[refresh.Path_, float]:
        return {("vmHourly", "Standard_D2s_v5"): 0.1, ("nowhere", "x"): 1.0}

    import datetime  # noqa: PLC0415

    kept = refresh.refresh("azure", fetch, tmp_path, datetime.date(2027, 1, 2))
    written = json.loads((tmp_path / "azure.json").read_text())
    assert written["regions"]["eastus"]["vmHourly"]["Standard_D2s_v5"] == 0.1
    assert written["asOf"] == "2027-01-02" and "refresh.py" in written["basis"]
    assert "eastus: not in the price list, kept: premiumSsdTiers/0/2" in kept
    assert "eastus: not in the table, left out: nowhere/x" in kept
