"""The seeded catalog: DigitalOcean's 2015 regions and sizes, common AWS regions, zones and types, and `local`.

`catalog_load` is idempotent: loading twice changes nothing. It takes the model classes so the data migration
can pass its historical models.
"""

DIGITALOCEAN_REGIONS = {
    "ams1": "Amsterdam 1",
    "ams2": "Amsterdam 2",
    "ams3": "Amsterdam 3",
    "fra1": "Frankfurt 1",
    "lon1": "London 1",
    "nyc1": "New York 1",
    "nyc2": "New York 2",
    "nyc3": "New York 3",
    "sfo1": "San Francisco 1",
    "sgp1": "Singapore 1",
}
# name: (label, cpu, memory MB, disk GB)
DIGITALOCEAN_TYPES = {
    "512mb": ("512MB", 1, 512, 20),
    "1gb": ("1GB", 1, 1024, 30),
    "2gb": ("2GB", 2, 2048, 40),
    "4gb": ("4GB", 2, 4096, 60),
    "8gb": ("8GB", 4, 8192, 80),
    "16gb": ("16GB", 8, 16384, 160),
    "32gb": ("32GB", 12, 32768, 320),
    "48gb": ("48GB", 16, 49152, 480),
    "64gb": ("64GB", 20, 65536, 640),
}

AWS_REGIONS = {
    "us-east-1": ("US East (N. Virginia)", ["a", "b", "c", "d", "e"]),
    "us-west-1": ("US West (N. California)", ["a", "c"]),
    "us-west-2": ("US West (Oregon)", ["a", "b", "c"]),
    "eu-west-1": ("EU (Ireland)", ["a", "b", "c"]),
    "eu-central-1": ("EU (Frankfurt)", ["a", "b"]),
    "ap-northeast-1": ("Asia Pacific (Tokyo)", ["a", "c"]),
    "ap-southeast-1": ("Asia Pacific (Singapore)", ["a", "b"]),
    "ap-southeast-2": ("Asia Pacific (Sydney)", ["a", "b", "c"]),
    "sa-east-1": ("South America (Sao Paulo)", ["a", "c"]),
}
AWS_TYPES = {
    "t2.nano": ("T2 Nano", 1, 512, 0),
    "t2.micro": ("T2 Micro", 1, 1024, 0),
    "t2.small": ("T2 Small", 1, 2048, 0),
    "t2.medium": ("T2 Medium", 2, 4096, 0),
    "t2.large": ("T2 Large", 2, 8192, 0),
    "m4.large": ("M4 Large", 2, 8192, 0),
    "m4.xlarge": ("M4 Extra Large", 4, 16384, 0),
    "c4.large": ("C4 Large", 2, 3840, 0),
    "r3.large": ("R3 Large", 2, 15616, 32),
}

LOCAL_REGIONS = {"local": "Local machine"}
LOCAL_TYPES = {
    "small": ("Small", 1, 1024, 20),
    "medium": ("Medium", 2, 4096, 40),
    "large": ("Large", 4, 8192, 80),
}

CATALOG = {
    # provider name: (label, {region: (label, [az names])}, {type: (label, cpu, memory, disk)})
    "digitalocean": (
        "Digital Ocean",
        {name: (label, []) for name, label in DIGITALOCEAN_REGIONS.items()},
        DIGITALOCEAN_TYPES,
    ),
    "aws": (
        "Amazon Web Services",
        {name: (label, [f"{name}{suffix}" for suffix in zones]) for name, (label, zones) in AWS_REGIONS.items()},
        AWS_TYPES,
    ),
    "local": ("Local (development)", {name: (label, []) for name, label in LOCAL_REGIONS.items()}, LOCAL_TYPES),
}


def catalog_load(Provider, Region, AvailabilityZone, NodeType) -> None:
    """Create what is missing and refresh labels and sizes; availability flags set by operators are kept."""
    for provider_name, (provider_label, regions, types) in CATALOG.items():
        provider, _ = Provider.objects.update_or_create(name=provider_name, defaults={"label": provider_label})
        region_rows, zone_rows = [], []
        for region_name, (region_label, zone_names) in regions.items():
            region, _ = Region.objects.update_or_create(
                provider=provider, name=region_name, defaults={"label": region_label}
            )
            region_rows.append(region)
            for zone_name in zone_names:
                zone, _ = AvailabilityZone.objects.get_or_create(region=region, name=zone_name)
                zone_rows.append(zone)
        for type_name, (type_label, cpu, memory, disk) in types.items():
            node_type, _ = NodeType.objects.update_or_create(
                provider=provider,
                name=type_name,
                defaults={"label": type_label, "cpu": cpu, "memory": memory, "disk": disk},
            )
            node_type.regions.add(*region_rows)
            node_type.availability_zones.add(*zone_rows)
