"""Regenerates the price tables (`review/prices/<cloud>.json`) from the providers' public price lists.

`python -m review.prices.refresh aws|gcp|azure [--api-key KEY]` (needs network; nothing else in the
project does, and the tests never call it: they check its parsing on small samples shaped as the
documented responses). Each figure the price list answers replaces the table's; a figure it does not
answer is kept and named on standard error, so a refresh never silently drops a price. The table's
`asOf` becomes today's date and `basis` says the figures were fetched.

Where the figures come from:
- AWS: the Price List Bulk API's offer files, one per service and region,
  `https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/<offer>/current/<region>/index.json`:
  `products` (sku → productFamily, attributes) and `terms.OnDemand` (sku → offer term →
  `priceDimensions` → `pricePerUnit.USD`, `beginRange`);
- GCP: the Cloud Billing Catalog API, `https://cloudbilling.googleapis.com/v1/services/<service>/skus`
  (an API key): `skus[]` with `description`, `category.usageType`, `serviceRegions` and
  `pricingInfo[0].pricingExpression.tieredRates[].unitPrice` (`units` + `nanos` / 1e9), paged by
  `nextPageToken`;
- Azure: the Retail Prices API, `https://prices.azure.com/api/retail/prices?$filter=...` (no key):
  `Items[]` with `serviceName`, `productName`, `skuName`, `armSkuName`, `meterName`, `type`,
  `unitOfMeasure`, `retailPrice`, paged by `NextPageLink`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

PRICES_DIR = Path(__file__).resolve().parent
AWS_OFFER_URL = "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/{offer}/current/{region}/index.json"
GCP_SKUS_URL = "https://cloudbilling.googleapis.com/v1/services/{service}/skus"
AZURE_PRICES_URL = "https://prices.azure.com/api/retail/prices"
GCP_SERVICES = {"compute": "6F81-5844-456A"}
TIMEOUT_SECONDS = 120

Path_ = tuple[str | int, ...]
"""Where a figure goes in a region's table, e.g. ("ebs", "gp3", "gbMonth")."""


# --- AWS ---------------------------------------------------------------------------------------

AWS_USAGE_PREFIX = {"us-east-1": "", "us-west-2": "USW2-", "eu-west-1": "EU-", "eu-central-1": "EUC1-"}
"""The region code the offer files put before a usage type (none in us-east-1)."""


@dataclass(frozen=True)
class AwsRule:
    """One figure of the AWS table: the offer file holding it, the product it is (family and
    attributes, the usage type without its region prefix) and the factor from the offer's unit.
    """

    path: Path_
    offer: str
    family: str
    attributes: Mapping[str, str]
    usage_type: str = ""
    factor: float = 1.0


def aws_rules(instance_types: Sequence[str]) -> list[AwsRule]:
    """Every figure of the AWS table the offer files answer."""
    linux = {"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used", "licenseModel": "No License required"}
    rules = [AwsRule(("instanceHourly", name), "AmazonEC2", "Compute Instance", {"instanceType": name, **linux}) for name in instance_types]
    for volume in ("gp3", "gp2", "io1", "io2", "st1", "sc1", "standard"):
        rules.append(AwsRule(("ebs", volume, "gbMonth"), "AmazonEC2", "Storage", {"volumeApiName": volume}))
    rules += [
        AwsRule(("ebs", "gp3", "iopsMonth"), "AmazonEC2", "System Operation", {"volumeApiName": "gp3"}, "EBS:VolumeP-IOPS.gp3"),
        AwsRule(("ebs", "gp3", "mibpsMonth"), "AmazonEC2", "Provisioned Throughput", {"volumeApiName": "gp3"}, "EBS:VolumeP-Throughput.gp3"),
        AwsRule(("ebs", "io1", "iopsMonth"), "AmazonEC2", "System Operation", {"volumeApiName": "io1"}, "EBS:VolumeP-IOPS.piops"),
        AwsRule(("ebs", "io2", "iopsTiers", 0, 1), "AmazonEC2", "System Operation", {"volumeApiName": "io2"}, "EBS:VolumeP-IOPS.io2"),
        AwsRule(("ebs", "io2", "iopsTiers", 1, 1), "AmazonEC2", "System Operation", {"volumeApiName": "io2"}, "EBS:VolumeP-IOPS.io2.tier2"),
        AwsRule(("ebs", "io2", "iopsTiers", 2, 1), "AmazonEC2", "System Operation", {"volumeApiName": "io2"}, "EBS:VolumeP-IOPS.io2.tier3"),
        AwsRule(("natGateway", "hourly"), "AmazonEC2", "NAT Gateway", {}, "NatGateway-Hours"),
        AwsRule(("natGateway", "perGb"), "AmazonEC2", "NAT Gateway", {}, "NatGateway-Bytes"),
        AwsRule(("cpuCreditVcpuHour",), "AmazonEC2", "CPU Credits", {"operatingSystem": "Linux"}, "CPUCredits:t3"),
        AwsRule(("publicIpv4Hourly",), "AmazonVPC", "VPC Public IPv4 Address", {}, "PublicIPv4:InUseAddress"),
        AwsRule(("vpcEndpoint", "interfacePerZoneHourly"), "AmazonVPC", "VpcEndpoint", {}, "VpcEndpoint-Hours"),
        AwsRule(("vpcEndpoint", "perGb"), "AmazonVPC", "VpcEndpoint", {}, "VpcEndpoint-Bytes"),
        AwsRule(("loadBalancer", "network", "hourly"), "AWSELB", "Load Balancer-Network", {}, "LoadBalancerUsage"),
        AwsRule(("loadBalancer", "network", "lcuHourly"), "AWSELB", "Load Balancer-Network", {}, "LCUUsage"),
        AwsRule(("loadBalancer", "application", "hourly"), "AWSELB", "Load Balancer-Application", {}, "LoadBalancerUsage"),
        AwsRule(("loadBalancer", "application", "lcuHourly"), "AWSELB", "Load Balancer-Application", {}, "LCUUsage"),
        AwsRule(("kms", "keyMonth"), "awskms", "Encryption Key", {}, "KMS-Keys"),
        AwsRule(("kms", "per10kRequests"), "awskms", "API Request", {}, "KMS-Requests", 10000),
        AwsRule(("logs", "ingestGb"), "AmazonCloudWatch", "Data Payload", {}, "DataProcessing-Bytes"),
        AwsRule(("logs", "storageGbMonth"), "AmazonCloudWatch", "Storage Snapshot", {}, "TimedStorage-ByteHrs"),
        AwsRule(("detailedMonitoring", "metricMonth"), "AmazonCloudWatch", "Metric", {}, "CW:MetricMonitorUsage"),
        AwsRule(("ecrGbMonth",), "AmazonECR", "EC2 Container Registry", {}, "TimedStorage-ByteHrs"),
        AwsRule(("secretsManagerSecretMonth",), "AWSSecretsManager", "Secret", {}, "AWSSecretsManager-Secrets"),
    ]
    s3_classes = {
        "STANDARD": "TimedStorage-ByteHrs", "STANDARD_IA": "TimedStorage-SIA-ByteHrs", "ONEZONE_IA": "TimedStorage-ZIA-ByteHrs",
        "GLACIER_IR": "TimedStorage-GIR-ByteHrs", "GLACIER": "TimedStorage-GlacierByteHrs", "DEEP_ARCHIVE": "TimedStorage-GDA-ByteHrs",
        "INTELLIGENT_TIERING": "TimedStorage-INT-FA-ByteHrs",
    }
    rules += [AwsRule(("s3GbMonth", name), "AmazonS3", "Storage", {}, usage) for name, usage in s3_classes.items()]
    return rules


def _first_tier_usd(terms: Mapping[str, Any], sku: str) -> float | None:
    """The on-demand price of a SKU's first tier (beginRange 0), per the offer's unit."""
    for term in cast(Mapping[str, Mapping[str, Any]], terms.get(sku, {})).values():
        for dimension in cast(Mapping[str, Mapping[str, Any]], term.get("priceDimensions", {})).values():
            if str(dimension.get("beginRange", "0")) == "0":
                return float(cast(Mapping[str, str], dimension["pricePerUnit"])["USD"])
    return None


def aws_figures(offer: Mapping[str, Any], region: str, rules: Sequence[AwsRule]) -> dict[Path_, float]:
    """The figures one offer file answers, by table path."""
    prefix = AWS_USAGE_PREFIX.get(region, "")
    terms = cast(Mapping[str, Any], cast(Mapping[str, Any], offer.get("terms", {})).get("OnDemand", {}))
    found: dict[Path_, float] = {}
    for sku, product in cast(Mapping[str, Mapping[str, Any]], offer.get("products", {})).items():
        attributes = cast(Mapping[str, str], product.get("attributes", {}))
        usage = attributes.get("usagetype", "").removeprefix(prefix) if prefix else attributes.get("usagetype", "")
        for rule in rules:
            if product.get("productFamily") != rule.family or (rule.usage_type and usage != rule.usage_type):
                continue
            if any(attributes.get(key) != value for key, value in rule.attributes.items()) or rule.path in found:
                continue
            price = _first_tier_usd(terms, sku)
            if price is not None:
                found[rule.path] = round(price * rule.factor, 10)
    return found


# --- GCP ---------------------------------------------------------------------------------------

GCP_RULES: Sequence[tuple[Path_, re.Pattern[str]]] = (
    (("machineFamilies", "n2", "vcpuHour"), re.compile(r"^N2 Instance Core running in ")),
    (("machineFamilies", "n2", "gbHour"), re.compile(r"^N2 Instance Ram running in ")),
    (("machineFamilies", "e2", "vcpuHour"), re.compile(r"^E2 Instance Core running in ")),
    (("machineFamilies", "e2", "gbHour"), re.compile(r"^E2 Instance Ram running in ")),
    (("diskGbMonth", "pd-standard"), re.compile(r"^Storage PD Capacity( in |$)")),
    (("diskGbMonth", "pd-balanced"), re.compile(r"^Balanced PD Capacity( in |$)")),
    (("diskGbMonth", "pd-ssd"), re.compile(r"^SSD backed PD Capacity( in |$)")),
    (("regionalDiskGbMonth", "pd-standard"), re.compile(r"^Regional Storage PD Capacity( in |$)")),
    (("regionalDiskGbMonth", "pd-balanced"), re.compile(r"^Regional Balanced PD Capacity( in |$)")),
    (("regionalDiskGbMonth", "pd-ssd"), re.compile(r"^Regional SSD backed PD Capacity( in |$)")),
)
"""Compute Engine SKUs by description (the catalog's wording); the rest of the GCP table is kept."""


def _money(unit_price: Mapping[str, Any]) -> float:
    """A `google.type.Money`: `units` (a string of whole units) plus `nanos` (1e-9 units)."""
    return int(unit_price.get("units") or 0) + int(unit_price.get("nanos") or 0) / 1e9


def gcp_figures(skus: Sequence[Mapping[str, Any]], region: str) -> dict[Path_, float]:
    """The figures the catalog's SKUs answer for one region (on-demand, first tier with a price)."""
    found: dict[Path_, float] = {}
    for sku in skus:
        category = cast(Mapping[str, str], sku.get("category", {}))
        if category.get("usageType") != "OnDemand" or region not in cast(list[str], sku.get("serviceRegions", [])):
            continue
        description = str(sku.get("description", ""))
        for path, pattern in GCP_RULES:
            if path in found or not pattern.search(description):
                continue
            expression = cast(Mapping[str, Any], cast(list[Mapping[str, Any]], sku.get("pricingInfo", [{}]))[0].get("pricingExpression", {}))
            rates = [_money(cast(Mapping[str, Any], rate["unitPrice"])) for rate in cast(list[Mapping[str, Any]], expression.get("tieredRates", []))]
            priced = [rate for rate in rates if rate > 0]
            if priced:
                found[path] = priced[0]
    return found


# --- Azure -------------------------------------------------------------------------------------


def azure_figures(items: Sequence[Mapping[str, Any]], vm_sizes: Sequence[str], disk_tiers: Sequence[str]) -> dict[Path_, float]:
    """The figures the Retail Prices API's items answer (consumption, Linux, not Spot or Low Priority)."""
    found: dict[Path_, float] = {}
    for item in items:
        if item.get("type") != "Consumption":
            continue
        service, product, meter = str(item.get("serviceName", "")), str(item.get("productName", "")), str(item.get("meterName", ""))
        price = float(item.get("retailPrice", 0.0))
        path = _azure_path(service, product, meter, str(item.get("armSkuName", "")), sizes=vm_sizes, tiers=disk_tiers)
        if path is not None and path not in found:
            found[path] = price
    return found


def _azure_path(service: str, product: str, meter: str, arm_sku: str, *, sizes: Sequence[str], tiers: Sequence[str]) -> Path_ | None:
    if service == "Virtual Machines" and arm_sku in sizes and "Windows" not in product and not re.search(r"Spot|Low Priority", meter):
        return ("vmHourly", arm_sku)
    if product == "Premium SSD Managed Disks":
        tier = meter.removesuffix(" LRS Disk")
        return ("premiumSsdTiers", tiers.index(tier), 2) if meter.endswith(" LRS Disk") and tier in tiers else None
    simple: Mapping[tuple[str, str], Path_] = {
        ("NAT Gateway", "Standard Gateway"): ("natGateway", "hourly"),
        ("NAT Gateway", "Standard Data Processed"): ("natGateway", "perGb"),
        ("IP Addresses", "Standard IPv4 Static Public IP"): ("publicIpStandardHourly",),
        ("Load Balancer", "Standard Included LB Rules and Outbound Rules"): ("loadBalancerStandard", "firstFiveRulesHourly"),
        ("Load Balancer", "Standard Overage LB Rules and Outbound Rules"): ("loadBalancerStandard", "additionalRuleHourly"),
        ("Load Balancer", "Standard Data Processed"): ("loadBalancerStandard", "perGb"),
        ("Virtual Network Private Link", "Standard Private Endpoint"): ("privateEndpoint", "hourly"),
        ("Virtual Network Private Link", "Standard Data Processed - Ingress"): ("privateEndpoint", "perGb"),
        ("Container Registry", "Basic Registry Unit"): ("containerRegistryDaily", "Basic"),
        ("Container Registry", "Standard Registry Unit"): ("containerRegistryDaily", "Standard"),
        ("Container Registry", "Premium Registry Unit"): ("containerRegistryDaily", "Premium"),
    }
    return simple.get((product, meter)) or simple.get((service, meter))


# --- fetching and writing ----------------------------------------------------------------------


def _get_json(url: str) -> Mapping[str, Any]:
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # the providers' public https price lists
        return cast(Mapping[str, Any], json.load(response))


def _gcp_skus(service: str, api_key: str) -> Iterator[Mapping[str, Any]]:
    token = ""
    while True:
        query = urllib.parse.urlencode({"key": api_key, "pageSize": 5000, **({"pageToken": token} if token else {})})
        page = _get_json(f"{GCP_SKUS_URL.format(service=service)}?{query}")
        yield from cast(list[Mapping[str, Any]], page.get("skus", []))
        token = str(page.get("nextPageToken") or "")
        if not token:
            return


def _azure_items(region: str) -> Iterator[Mapping[str, Any]]:
    query = urllib.parse.urlencode({"$filter": f"armRegionName eq '{region}' and priceType eq 'Consumption'"})
    url = f"{AZURE_PRICES_URL}?{query}"
    while url:
        page = _get_json(url)
        yield from cast(list[Mapping[str, Any]], page.get("Items", []))
        url = str(page.get("NextPageLink") or "")


def apply_figures(region_table: dict[str, Any], figures: Mapping[Path_, float]) -> list[str]:
    """Writes each figure at its path in a region's table; returns the paths the table lacks (left out)."""
    missing: list[str] = []
    for path, value in figures.items():
        node: Any = region_table
        for key in path[:-1]:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if node is None:
            missing.append("/".join(map(str, path)))
            continue
        node[path[-1]] = value
    return missing


def _table_paths(node: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    if isinstance(node, dict):
        for key, value in cast(dict[str, Any], node).items():
            yield from _table_paths(value, (*prefix, key))
    elif isinstance(node, list) and all(isinstance(item, list) for item in cast(list[Any], node)):
        for index, item in enumerate(cast(list[list[Any]], node)):
            yield (*prefix, index, len(item) - 1)
    else:
        yield prefix


Fetcher = Callable[[str, Mapping[str, Any]], Mapping[Path_, float]]


def _fetcher(cloud: str, api_key: str) -> Fetcher:
    def aws(region: str, table: Mapping[str, Any]) -> Mapping[Path_, float]:
        rules = aws_rules(list(cast(Mapping[str, float], table["instanceHourly"])))
        figures: dict[Path_, float] = {}
        for offer in sorted({rule.offer for rule in rules}):
            figures.update(aws_figures(_get_json(AWS_OFFER_URL.format(offer=offer, region=region)), region, rules))
        return figures

    def gcp(region: str, table: Mapping[str, Any]) -> Mapping[Path_, float]:
        return gcp_figures(list(_gcp_skus(GCP_SERVICES["compute"], api_key)), region)

    def azure(region: str, table: Mapping[str, Any]) -> Mapping[Path_, float]:
        tiers = [str(tier[0]) for tier in cast(list[list[Any]], table["premiumSsdTiers"])]
        return azure_figures(list(_azure_items(region)), list(cast(Mapping[str, float], table["vmHourly"])), tiers)

    return {"aws": aws, "gcp": gcp, "azure": azure}[cloud]


def refresh(cloud: str, fetch: Fetcher, directory: Path = PRICES_DIR, today: datetime.date | None = None) -> list[str]:
    """Refreshes one cloud's table in place; returns what was kept unrefreshed (region/path)."""
    path = directory / f"{cloud}.json"
    data = cast(dict[str, Any], json.loads(path.read_text()))
    kept: list[str] = []
    for region, table in cast(dict[str, dict[str, Any]], data["regions"]).items():
        figures = fetch(region, table)
        kept += [f"{region}: not in the table, left out: {p}" for p in apply_figures(table, figures)]
        kept += [f"{region}: not in the price list, kept: {'/'.join(map(str, p))}" for p in _table_paths(table) if p not in figures]
    date = (today or datetime.datetime.now(datetime.UTC).date()).isoformat()
    data["asOf"] = date
    data["basis"] = f"Fetched on {date} by review/prices/refresh.py from the sources listed; figures the price list did not answer were kept (see notes)."
    path.write_text(json.dumps(data, indent=1) + "\n")
    return kept


def main(argv: Sequence[str] | None = None) -> int:
    """Refreshes one table; exits 0 with what it kept on standard error, 1 when the price list cannot be read."""
    parser = argparse.ArgumentParser(prog="python -m review.prices.refresh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cloud", choices=("aws", "gcp", "azure"))
    parser.add_argument("--api-key", default="", help="GCP: an API key for the Cloud Billing Catalog API")
    args = parser.parse_args(argv)
    if args.cloud == "gcp" and not args.api_key:
        parser.error("gcp needs --api-key (the Cloud Billing Catalog API takes an API key)")
    try:
        kept = refresh(args.cloud, _fetcher(args.cloud, args.api_key))
    except OSError as error:
        print(f"refresh {args.cloud}: {error}", file=sys.stderr)
        return 1
    for line in kept:
        print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
