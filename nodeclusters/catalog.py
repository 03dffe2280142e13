"""The seeded catalog: DigitalOcean's 2015 regions and sizes, common AWS regions, zones and types, and `local`.

Tutum's 2015 sizes stay valid names: each is an alias of today's equivalent (the `*_ALIASES` tables below), which
the seed also carries, so the reference's examples work offline and against a real account. The live catalog
(`nodeclusters.services.catalog_sync`) refreshes today's entries from the providers' APIs.

`catalog_load` is idempotent: loading twice changes nothing. It takes the model classes so the data migration
can pass its historical models.
"""

from django.db.models import Q

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

# Today's DigitalOcean sizes the 2015 ones stand for: name: (label, cpu, memory MB, disk GB). Prices and the regions
# that offer them come from the catalog sync (`manage.py synccatalog`).
DIGITALOCEAN_CURRENT_TYPES = {
    "s-1vcpu-512mb-10gb": ("Basic 1 vCPU, 512 MB", 1, 512, 10),
    "s-1vcpu-1gb": ("Basic 1 vCPU, 1 GB", 1, 1024, 25),
    "s-2vcpu-2gb": ("Basic 2 vCPUs, 2 GB", 2, 2048, 60),
    "s-2vcpu-4gb": ("Basic 2 vCPUs, 4 GB", 2, 4096, 80),
    "s-4vcpu-8gb": ("Basic 4 vCPUs, 8 GB", 4, 8192, 160),
    "s-8vcpu-16gb": ("Basic 8 vCPUs, 16 GB", 8, 16384, 320),
    "s-8vcpu-32gb": ("Basic 8 vCPUs, 32 GB", 8, 32768, 640),
    "g-16vcpu-64gb": ("General Purpose 16 vCPUs, 64 GB", 16, 65536, 200),
}
# Tutum's 2015 DigitalOcean size -> today's size a new droplet of it gets: the same memory, else the nearest larger
# size DigitalOcean's resize guidance points to (48gb has no equal today).
DIGITALOCEAN_ALIASES = {
    "512mb": "s-1vcpu-512mb-10gb",
    "1gb": "s-1vcpu-1gb",
    "2gb": "s-2vcpu-2gb",
    "4gb": "s-2vcpu-4gb",
    "8gb": "s-4vcpu-8gb",
    "16gb": "s-8vcpu-16gb",
    "32gb": "s-8vcpu-32gb",
    "48gb": "g-16vcpu-64gb",
    "64gb": "g-16vcpu-64gb",
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

# Today's EC2 types the 2015 ones stand for (EBS-only: no local disk).
AWS_CURRENT_TYPES = {
    "t3.nano": ("T3 Nano", 2, 512, 0),
    "t3.micro": ("T3 Micro", 2, 1024, 0),
    "t3.small": ("T3 Small", 2, 2048, 0),
    "t3.medium": ("T3 Medium", 2, 4096, 0),
    "t3.large": ("T3 Large", 2, 8192, 0),
    "m7i.large": ("M7i Large", 2, 8192, 0),
    "m7i.xlarge": ("M7i Extra Large", 4, 16384, 0),
    "c7i.large": ("C7i Large", 2, 4096, 0),
    "r7i.large": ("R7i Large", 2, 16384, 0),
}
# Tutum's 2015 EC2 type -> the current generation of the same family and size (t2 -> t3, m4 -> m7i, c4 -> c7i,
# r3 -> r7i).
AWS_ALIASES = {
    "t2.nano": "t3.nano",
    "t2.micro": "t3.micro",
    "t2.small": "t3.small",
    "t2.medium": "t3.medium",
    "t2.large": "t3.large",
    "m4.large": "m7i.large",
    "m4.xlarge": "m7i.xlarge",
    "c4.large": "c7i.large",
    "r3.large": "r7i.large",
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
        {**DIGITALOCEAN_TYPES, **DIGITALOCEAN_CURRENT_TYPES},
    ),
    "aws": (
        "Amazon Web Services",
        {name: (label, [f"{name}{suffix}" for suffix in zones]) for name, (label, zones) in AWS_REGIONS.items()},
        {**AWS_TYPES, **AWS_CURRENT_TYPES},
    ),
    "local": ("Local (development)", {name: (label, []) for name, label in LOCAL_REGIONS.items()}, LOCAL_TYPES),
}

#: The one mapping table per provider: legacy (2015) node type name -> today's node type name.
LEGACY_ALIASES = {"digitalocean": DIGITALOCEAN_ALIASES, "aws": AWS_ALIASES}


def catalog_load(Provider, Region, AvailabilityZone, NodeType) -> None:
    """Create what is missing and refresh labels and sizes; availability flags set by operators are kept, and so is
    what the catalog sync wrote (a type it has seen keeps its sizes and regions). Legacy names get their alias."""
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
        # Types the sync has seen, and aliases of those (the sync gives them their target's regions). Migration
        # 0002's historical model predates both fields.
        live_catalog = _has_field(NodeType, "alias_of")
        synced = set()
        if live_catalog:
            synced = set(
                NodeType.objects.filter(provider=provider)
                .filter(Q(synced_at__isnull=False) | Q(alias_of__synced_at__isnull=False))
                .values_list("name", flat=True)
            )
        for type_name, (type_label, cpu, memory, disk) in types.items():
            if type_name in synced:
                continue
            node_type, _ = NodeType.objects.update_or_create(
                provider=provider,
                name=type_name,
                defaults={"label": type_label, "cpu": cpu, "memory": memory, "disk": disk},
            )
            node_type.regions.add(*region_rows)
            node_type.availability_zones.add(*zone_rows)
        if live_catalog:
            catalog_aliases_load(NodeType, provider=provider)


def _has_field(model, name: str) -> bool:
    return any(field.name == name for field in model._meta.get_fields())


def catalog_aliases_load(NodeType, *, provider) -> None:
    """Point each legacy node type of the provider at today's equivalent (LEGACY_ALIASES), where both rows exist."""
    aliases = LEGACY_ALIASES.get(provider.name, {})
    targets = dict(NodeType.objects.filter(provider=provider, name__in=set(aliases.values())).values_list("name", "pk"))
    for legacy_name, target_name in aliases.items():
        if target_name in targets:
            NodeType.objects.filter(provider=provider, name=legacy_name).exclude(
                alias_of_id=targets[target_name]
            ).update(alias_of_id=targets[target_name])
