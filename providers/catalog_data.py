"""Today's catalogs as plain data: what the simulated clouds serve offline, and AWS's region names (no Django).

The DigitalOcean sizes and prices are those of `/v2/sizes` for the Basic and a few Premium/dedicated plans; the
AWS types a common current-generation subset. Real drivers read the live catalog; these only stand in for it.
"""

from __future__ import annotations

from decimal import Decimal

from providers.base import Catalog, CatalogNodeType, CatalogRegion

# slug: (name, available). Like the real API, retired data centres are still listed, unavailable.
DIGITALOCEAN_REGIONS = {
    "ams3": ("Amsterdam 3", True),
    "atl1": ("Atlanta 1", True),
    "blr1": ("Bangalore 1", True),
    "fra1": ("Frankfurt 1", True),
    "lon1": ("London 1", True),
    "nyc1": ("New York 1", True),
    "nyc2": ("New York 2", True),
    "nyc3": ("New York 3", True),
    "sfo1": ("San Francisco 1", False),
    "sfo2": ("San Francisco 2", True),
    "sfo3": ("San Francisco 3", True),
    "sgp1": ("Singapore 1", True),
    "syd1": ("Sydney 1", True),
    "tor1": ("Toronto 1", True),
}
_DIGITALOCEAN_EVERYWHERE = tuple(slug for slug, (_, available) in DIGITALOCEAN_REGIONS.items() if available)
_DIGITALOCEAN_LARGE_PLANS = ("ams3", "blr1", "fra1", "lon1", "nyc1", "nyc3", "sfo3", "sgp1", "syd1", "tor1")
# slug: (description, vcpus, memory MB, disk GB, price monthly, price hourly, regions)
DIGITALOCEAN_SIZES = {
    "s-1vcpu-512mb-10gb": ("Basic", 1, 512, 10, "4.00", "0.00595", _DIGITALOCEAN_EVERYWHERE),
    "s-1vcpu-1gb": ("Basic", 1, 1024, 25, "6.00", "0.00893", _DIGITALOCEAN_EVERYWHERE),
    "s-1vcpu-2gb": ("Basic", 1, 2048, 50, "12.00", "0.01786", _DIGITALOCEAN_EVERYWHERE),
    "s-2vcpu-2gb": ("Basic", 2, 2048, 60, "18.00", "0.02679", _DIGITALOCEAN_EVERYWHERE),
    "s-2vcpu-4gb": ("Basic", 2, 4096, 80, "24.00", "0.03571", _DIGITALOCEAN_EVERYWHERE),
    "s-4vcpu-8gb": ("Basic", 4, 8192, 160, "48.00", "0.07143", _DIGITALOCEAN_EVERYWHERE),
    "s-8vcpu-16gb": ("Basic", 8, 16384, 320, "96.00", "0.14286", _DIGITALOCEAN_EVERYWHERE),
    "c-2": ("CPU-Optimized", 2, 4096, 25, "42.00", "0.06250", _DIGITALOCEAN_LARGE_PLANS),
    "g-2vcpu-8gb": ("General Purpose", 2, 8192, 25, "63.00", "0.09375", _DIGITALOCEAN_LARGE_PLANS),
    "m-2vcpu-16gb": ("Memory-Optimized", 2, 16384, 50, "84.00", "0.12500", _DIGITALOCEAN_LARGE_PLANS),
}

# AWS's own names for its commercial regions (DescribeRegions gives only the codes).
AWS_REGION_LABELS = {
    "af-south-1": "Africa (Cape Town)",
    "ap-east-1": "Asia Pacific (Hong Kong)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-northeast-2": "Asia Pacific (Seoul)",
    "ap-northeast-3": "Asia Pacific (Osaka)",
    "ap-south-1": "Asia Pacific (Mumbai)",
    "ap-south-2": "Asia Pacific (Hyderabad)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-southeast-3": "Asia Pacific (Jakarta)",
    "ap-southeast-4": "Asia Pacific (Melbourne)",
    "ca-central-1": "Canada (Central)",
    "ca-west-1": "Canada West (Calgary)",
    "eu-central-1": "Europe (Frankfurt)",
    "eu-central-2": "Europe (Zurich)",
    "eu-north-1": "Europe (Stockholm)",
    "eu-south-1": "Europe (Milan)",
    "eu-south-2": "Europe (Spain)",
    "eu-west-1": "Europe (Ireland)",
    "eu-west-2": "Europe (London)",
    "eu-west-3": "Europe (Paris)",
    "il-central-1": "Israel (Tel Aviv)",
    "me-central-1": "Middle East (UAE)",
    "me-south-1": "Middle East (Bahrain)",
    "sa-east-1": "South America (Sao Paulo)",
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
}
# region: zone suffixes, for the simulated AWS.
AWS_SIMULATED_ZONES = {
    "us-east-1": "abcdef",
    "us-east-2": "abc",
    "us-west-1": "ac",
    "us-west-2": "abcd",
    "eu-west-1": "abc",
    "eu-central-1": "abc",
    "ap-northeast-1": "acd",
    "ap-southeast-1": "abc",
    "ap-southeast-2": "abc",
    "sa-east-1": "abc",
}
# name: (vCPUs, memory MiB, instance store GB); offered in every simulated region.
AWS_TYPES = {
    "t3.nano": (2, 512, 0),
    "t3.micro": (2, 1024, 0),
    "t3.small": (2, 2048, 0),
    "t3.medium": (2, 4096, 0),
    "t3.large": (2, 8192, 0),
    "t4g.micro": (2, 1024, 0),
    "t4g.small": (2, 2048, 0),
    "m7g.large": (2, 8192, 0),
    "m7g.xlarge": (4, 16384, 0),
    "m7i.large": (2, 8192, 0),
    "m6id.large": (2, 8192, 118),
    "c7g.large": (2, 4096, 0),
    "c7i.large": (2, 4096, 0),
    "r7g.large": (2, 16384, 0),
}


def digitalocean_catalog() -> Catalog:
    """DigitalOcean's regions and sizes as `/v2/regions` and `/v2/sizes` list them today."""
    regions = tuple(
        CatalogRegion(name=slug, label=name, available=available)
        for slug, (name, available) in DIGITALOCEAN_REGIONS.items()
    )
    node_types = tuple(
        CatalogNodeType(
            name=slug,
            label=f"{description} {vcpus} vCPU / {_memory_label(memory)} / {disk} GB",
            cpu=vcpus,
            memory_mb=memory,
            disk_gb=disk,
            regions=size_regions,
            price_monthly=Decimal(monthly),
            price_hourly=Decimal(hourly),
        )
        for slug, (description, vcpus, memory, disk, monthly, hourly, size_regions) in DIGITALOCEAN_SIZES.items()
    )
    return Catalog(regions=regions, node_types=node_types)


def aws_catalog() -> Catalog:
    """A current-generation subset of EC2's types in common regions, shaped as the AWS driver returns it."""
    regions = tuple(
        CatalogRegion(
            name=region, label=AWS_REGION_LABELS[region], zones=tuple(f"{region}{suffix}" for suffix in suffixes)
        )
        for region, suffixes in AWS_SIMULATED_ZONES.items()
    )
    all_zones = tuple(zone for region in regions for zone in region.zones)
    node_types = tuple(
        CatalogNodeType(
            name=name,
            label=name,
            cpu=vcpus,
            memory_mb=memory,
            disk_gb=disk,
            regions=tuple(AWS_SIMULATED_ZONES),
            zones=all_zones,
        )
        for name, (vcpus, memory, disk) in AWS_TYPES.items()
    )
    return Catalog(regions=regions, node_types=node_types)


def _memory_label(memory_mb: int) -> str:
    """ "512 MB" or "4 GB", as DigitalOcean's control panel writes sizes."""
    return f"{memory_mb} MB" if memory_mb < 1024 else f"{memory_mb // 1024} GB"
