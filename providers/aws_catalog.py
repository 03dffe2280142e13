"""What the AWS driver reads about an account and its region's offer: identity, vCPU quota, regions, zones, types.

Functions take `client(service, region)`, the driver's client factory, so every call is made as the driver's
account and through the driver's endpoint (a moto server in tests). No Django.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from providers.aws_errors import error_code, translated_errors
from providers.base import AccountInfo, Catalog, CatalogNodeType, CatalogRegion, Quota
from providers.catalog_data import AWS_REGION_LABELS

logger = logging.getLogger(__name__)

ClientFactory = Callable[[str, str], Any]

#: Service Quotas' "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", counted in vCPUs.
STANDARD_VCPU_QUOTA_CODE = "L-1216C47A"
#: The instance families that quota counts, by the first letter of the type name.
STANDARD_FAMILY_LETTERS = frozenset("acdhimrtz")
#: Instance type names DescribeInstanceTypes takes per call.
TYPES_PER_CALL = 100


def verify_account(client: ClientFactory, *, region: str) -> AccountInfo:
    """Who the credentials are (STS GetCallerIdentity, which needs no permission) and the region's vCPU quota."""
    with translated_errors("get_caller_identity"):
        identity = client("sts", region).get_caller_identity()
    limit = read_vcpu_quota(client, region=region)
    limits = {"vcpu_limit": limit, "vcpu_limit_region": region} if limit is not None else {}
    return AccountInfo(account_id=identity["Account"], label=identity.get("Arn", ""), limits=limits)


def read_vcpu_quota(client: ClientFactory, *, region: str) -> int | None:
    """The account's running On-Demand standard vCPU quota in the region, or None where it cannot be read.

    Reading it needs `servicequotas:GetServiceQuota`, which many accounts do not grant; the engine then learns of
    the limit from RunInstances' VcpuLimitExceeded instead, so an unreadable quota is not an error.
    """
    try:
        answer = client("service-quotas", region).get_service_quota(
            ServiceCode="ec2", QuotaCode=STANDARD_VCPU_QUOTA_CODE
        )
    except ClientError as error:
        logger.info("aws: vCPU quota unreadable in %s: %s", region, error_code(error))
        return None
    except BotoCoreError as error:
        logger.info("aws: vCPU quota unreadable in %s: %s", region, type(error).__name__)
        return None
    value = (answer.get("Quota") or {}).get("Value")
    return int(value) if value is not None else None


def counts_against_standard_quota(item: dict) -> bool:
    """Whether a described instance uses the standard On-Demand vCPU quota (spot and other families do not)."""
    instance_type = item.get("InstanceType") or ""
    return item.get("InstanceLifecycle") != "spot" and instance_type[:1] in STANDARD_FAMILY_LETTERS


def get_quota(client: ClientFactory, *, region: str, instances: list[dict], type_vcpus: dict[str, int]) -> Quota:
    """The region's vCPU quota and the vCPUs its pending and running standard On-Demand instances use.

    `instances` are every pending or running instance the account has in the region (ours and anyone else's: the
    quota is the account's). `type_vcpus` caches vCPUs per type across calls.
    """
    counted = [item for item in instances if counts_against_standard_quota(item)]
    unknown = {item["InstanceType"] for item in counted if not item.get("CpuOptions")} - set(type_vcpus)
    if unknown:
        for instance_type in describe_instance_types(client, region=region, names=sorted(unknown)):
            type_vcpus[instance_type["InstanceType"]] = instance_type["VCpuInfo"]["DefaultVCpus"]
    in_use = 0
    for item in counted:
        cpu_options = item.get("CpuOptions") or {}
        if cpu_options.get("CoreCount"):
            in_use += cpu_options["CoreCount"] * cpu_options.get("ThreadsPerCore", 1)
        else:
            in_use += type_vcpus.get(item["InstanceType"], 0)
    return Quota(unit="vcpus", limit=read_vcpu_quota(client, region=region), in_use=in_use)


def describe_instance_types(client: ClientFactory, *, region: str, names: list[str]) -> list[dict]:
    """DescribeInstanceTypes for these names, a hundred at a time, across all pages."""
    found: list[dict] = []
    paginator = client("ec2", region).get_paginator("describe_instance_types")
    for start in range(0, len(names), TYPES_PER_CALL):
        with translated_errors("describe_instance_types"):
            for page in paginator.paginate(InstanceTypes=names[start : start + TYPES_PER_CALL]):
                found.extend(page.get("InstanceTypes", []))
    return found


def fetch_catalog(
    client: ClientFactory,
    *,
    home_region: str,
    regions: Iterable[str] | None,
    type_patterns: Iterable[str] = (),
) -> Catalog:
    """Regions (with their zones) and the instance types offered in them, with vCPUs, memory and local disk.

    `regions` bounds the work to the regions the catalog syncs (all enabled regions when None); a listed region the
    account does not have enabled comes back unavailable. `type_patterns` ("t3.*", "m7g.large") keep only the
    matching types (all when empty). The EC2 API has no prices, so none are given.
    """
    patterns = tuple(type_patterns)
    with translated_errors("describe_regions"):
        enabled = sorted(item["RegionName"] for item in client("ec2", home_region).describe_regions()["Regions"])
    wanted = sorted(set(regions)) if regions else enabled
    catalog_regions: list[CatalogRegion] = []
    offered: dict[str, tuple[set[str], set[str]]] = {}  # type -> (regions, zones)
    descriptions: dict[str, dict] = {}
    for region in wanted:
        label = AWS_REGION_LABELS.get(region, region)
        if region not in enabled:
            catalog_regions.append(CatalogRegion(name=region, label=label, available=False))
            continue
        zones = _available_zones(client, region)
        catalog_regions.append(CatalogRegion(name=region, label=label, zones=tuple(zones)))
        for instance_type, zone in _zone_offerings(client, region):
            if zone in zones and (not patterns or any(fnmatch.fnmatchcase(instance_type, p) for p in patterns)):
                type_regions, type_zones = offered.setdefault(instance_type, (set(), set()))
                type_regions.add(region)
                type_zones.add(zone)
        # Types are described where they are offered: a type only some regions have is described there.
        missing = sorted(
            name for name, (type_regions, _) in offered.items() if region in type_regions and name not in descriptions
        )
        for description in describe_instance_types(client, region=region, names=missing):
            descriptions[description["InstanceType"]] = description
    node_types = [
        _node_type(descriptions[name], type_regions, type_zones)
        for name, (type_regions, type_zones) in sorted(offered.items())
        if name in descriptions
    ]
    return Catalog(regions=tuple(catalog_regions), node_types=tuple(node_types))


def _available_zones(client: ClientFactory, region: str) -> list[str]:
    """The region's availability zones that are up (not Local Zones or Wavelength Zones)."""
    with translated_errors("describe_availability_zones"):
        answer = client("ec2", region).describe_availability_zones(
            Filters=[{"Name": "zone-type", "Values": ["availability-zone"]}]
        )
    return sorted(zone["ZoneName"] for zone in answer["AvailabilityZones"] if zone.get("State") == "available")


def _zone_offerings(client: ClientFactory, region: str) -> list[tuple[str, str]]:
    """(instance type, zone) for every type offered in each of the region's zones."""
    paginator = client("ec2", region).get_paginator("describe_instance_type_offerings")
    with translated_errors("describe_instance_type_offerings"):
        return [
            (offering["InstanceType"], offering["Location"])
            for page in paginator.paginate(LocationType="availability-zone", PaginationConfig={"PageSize": 1000})
            for offering in page.get("InstanceTypeOfferings", [])
        ]


def _node_type(description: dict, regions: set[str], zones: set[str]) -> CatalogNodeType:
    """One DescribeInstanceTypes entry as a catalog node type; disk is the instance store, 0 for EBS-only types."""
    name = description["InstanceType"]
    return CatalogNodeType(
        name=name,
        label=name,
        cpu=description["VCpuInfo"]["DefaultVCpus"],
        memory_mb=description["MemoryInfo"]["SizeInMiB"],
        disk_gb=(description.get("InstanceStorageInfo") or {}).get("TotalSizeInGB") or 0,
        regions=tuple(sorted(regions)),
        zones=tuple(sorted(zones)),
    )
