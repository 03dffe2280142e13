"""The Amazon EC2 driver, through boto3: the server's own AWS chain, or a user's access keys or assumed role."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from providers import aws_catalog
from providers.aws_errors import error_code, translated_errors
from providers.aws_session import build_session, credentials_kind
from providers.base import (
    CLUSTER_UUID_TAG,
    NODE_UUID_TAG,
    OWNER_TAG,
    AccountInfo,
    Catalog,
    Instance,
    InstanceState,
    InvalidProviderRequest,
    NodeDriver,
    NodeSpec,
    PermanentProviderError,
    Quota,
)

# EC2 instance-state-name values mapped onto the neutral states. "stopping" counts as stopped: the instance is
# no longer serving and will not come back by itself.
EC2_STATES = {
    "pending": InstanceState.PENDING,
    "running": InstanceState.RUNNING,
    "stopping": InstanceState.STOPPED,
    "stopped": InstanceState.STOPPED,
    "shutting-down": InstanceState.TERMINATING,
    "terminated": InstanceState.TERMINATED,
}
LIVE_EC2_STATES = ["pending", "running", "stopping", "stopped"]
# Values one DescribeInstances filter takes at most.
DESCRIBE_FILTER_VALUES = 200

# Codes EC2 answers for an instance id it does not know (any more), or one that cannot be an instance id.
UNKNOWN_INSTANCE_CODES = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})

# The engine owns retries and backoff: botocore gets one quick extra attempt (its standard mode covers dropped
# connections, throttling and 5xx), and short timeouts keep a hung endpoint from holding a worker for minutes.
BOTO_CONFIG = Config(
    connect_timeout=10,
    read_timeout=10,
    # total_max_attempts counts the first try; botocore's "max_attempts" would count retries only.
    retries={"mode": "standard", "total_max_attempts": 2},
)

# Used when the AMI's root device name cannot be looked up; it is the root device of most current Linux AMIs.
DEFAULT_ROOT_DEVICE = "/dev/xvda"

# Canonical's public SSM parameter naming the current Ubuntu 24.04 LTS AMI of the region it is read in.
UBUNTU_AMI_PARAMETER = "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"


class AWSDriver(NodeDriver):
    """Amazon EC2. One boto3 client per region, created once and shared by every thread calling the driver."""

    name = "aws"
    supports_docker_upgrade = False

    def __init__(
        self,
        *,
        owner_tag: str = "tutum-api",
        provider_name: str | None = None,
        credentials: dict | None = None,
        endpoint_url: str | None = None,
        amis: dict[str, str] | None = None,
        default_ami: str | None = None,
        ami_parameter: str = UBUNTU_AMI_PARAMETER,
        home_region: str = "us-east-1",
        catalog_regions: Iterable[str] | Callable[[], Iterable[str]] | None = None,
        catalog_instance_types: Iterable[str] = (),
    ) -> None:
        """`credentials` name the account: None for the server's own chain, {"access_key_id", "secret_access_key"}
        or {"role_arn", "external_id"}. `endpoint_url` points at a stand-in such as a moto server. The AMI of a
        node is its cluster's `provider_options["ami"]`, else `amis[region]`, else `default_ami`, else the region's
        current Ubuntu LTS from the public SSM parameter `ami_parameter`. `home_region` answers account-wide
        questions; `catalog_regions` (or a callable giving them) bounds the catalog to those regions, and
        `catalog_instance_types` (patterns such as "t3.*") to those types.
        """
        super().__init__(owner_tag=owner_tag, provider_name=provider_name)
        credentials_kind(credentials)  # refuses a malformed credentials object now, not at the first call
        self._credentials = dict(credentials) if credentials is not None else None
        self.endpoint_url = endpoint_url or None
        self.amis = dict(amis or {})
        self.default_ami = default_ami or None
        self.ami_parameter = ami_parameter
        self.home_region = home_region
        self.catalog_regions = catalog_regions
        self.catalog_instance_types = tuple(catalog_instance_types)
        self._session: boto3.session.Session | None = None
        self._clients: dict[tuple[str, str], Any] = {}
        self._root_devices: dict[tuple[str, str], str] = {}
        self._resolved_amis: dict[str, str] = {}
        self._type_vcpus: dict[str, int] = {}
        self._lock = threading.Lock()

    def create_node(self, spec: NodeSpec) -> Instance:
        """Run one instance for the node, or return the live one it already has.

        `ClientToken` makes a retried `RunInstances` return the first attempt's instance on real EC2; the lookup
        by tag before it covers endpoints that ignore the token (moto does).
        """
        existing = self.find_node(node_uuid=spec.node_uuid, region=spec.region)
        if existing is not None:
            return existing
        image_id = self._image_for(spec)
        params = {
            "MinCount": 1,
            "MaxCount": 1,
            "ImageId": image_id,
            "InstanceType": spec.node_type,
            "ClientToken": spec.node_uuid,
            "BlockDeviceMappings": [
                {
                    "DeviceName": self._root_device_name(spec.region, image_id),
                    "Ebs": {"VolumeSize": spec.disk_gb, "VolumeType": "gp3", "DeleteOnTermination": True},
                }
            ],
            "TagSpecifications": [
                {"ResourceType": resource, "Tags": self._tag_list(spec)} for resource in ("instance", "volume")
            ],
        }
        if spec.availability_zone:
            params["Placement"] = {"AvailabilityZone": spec.availability_zone}
        params.update(self._provider_option_params(spec))
        client = self._client(spec.region)
        with translated_errors("run_instances"):
            response = client.run_instances(**params)
            instance = self._to_instance(response["Instances"][0], spec.region)
            if instance.is_gone:
                # The token already belongs to an instance that has since been terminated, and EC2 answers an
                # idempotent retry with that corpse. Derive a new token from it: still stable across retries of
                # this create, yet distinct from the dead instance's.
                params["ClientToken"] = f"{spec.node_uuid}:{instance.instance_id}"[:64]
                response = client.run_instances(**params)
                instance = self._to_instance(response["Instances"][0], spec.region)
        return instance

    def find_node(self, *, node_uuid: str, region: str) -> Instance | None:
        """The live instance tagged with this node uuid and our owner tag, or None."""
        filters = [
            {"Name": f"tag:{NODE_UUID_TAG}", "Values": [node_uuid]},
            {"Name": f"tag:{OWNER_TAG}", "Values": [self.owner_tag]},
            {"Name": "instance-state-name", "Values": LIVE_EC2_STATES},
        ]
        instances = sorted(self._describe(region, Filters=filters), key=lambda item: str(item.get("LaunchTime", "")))
        # Two instances for one node can only come from outside this driver; the oldest is the one to keep.
        return self._to_instance(instances[0], region) if instances else None

    def get_node(self, *, instance_id: str, region: str) -> Instance | None:
        """The instance with this id (terminated ones too, while EC2 still lists them), or None."""
        try:
            instances = self._describe(region, InstanceIds=[instance_id])
        except PermanentProviderError as error:
            if _is_unknown_instance(error):
                return None
            raise
        return self._to_instance(instances[0], region) if instances else None

    def get_nodes(self, *, instance_ids: list[str], region: str) -> dict[str, Instance]:
        """The instances with these ids EC2 still describes, by id, in one DescribeInstances per 200 ids.

        Filtered by `instance-id` rather than asked for by `InstanceIds`, which fails the whole call when one id is
        unknown (as a just-created one can be for a moment, or one long terminated).
        """
        found = {}
        for start in range(0, len(instance_ids), DESCRIBE_FILTER_VALUES):
            chunk = instance_ids[start : start + DESCRIBE_FILTER_VALUES]
            for item in self._describe(region, Filters=[{"Name": "instance-id", "Values": chunk}]):
                instance = self._to_instance(item, region)
                found[instance.instance_id] = instance
        return found

    def destroy_node(self, *, instance_id: str, region: str) -> None:
        """Terminate the instance; an id EC2 no longer knows is already as destroyed as it gets."""
        try:
            with translated_errors("terminate_instances"):
                self._client(region).terminate_instances(InstanceIds=[instance_id])
        except PermanentProviderError as error:
            if _is_unknown_instance(error):
                return
            raise

    def list_nodes(self, *, region: str) -> list[Instance]:
        """Every live instance in the region carrying our owner tag."""
        filters = [
            {"Name": f"tag:{OWNER_TAG}", "Values": [self.owner_tag]},
            {"Name": "instance-state-name", "Values": LIVE_EC2_STATES},
        ]
        return [self._to_instance(item, region) for item in self._describe(region, Filters=filters)]

    def verify_account(self) -> AccountInfo:
        """The account id and ARN the credentials act as (STS GetCallerIdentity), with the home region's vCPU quota
        where Service Quotas lets us read it."""
        return aws_catalog.verify_account(self._client_for, region=self.home_region)

    def fetch_catalog(self) -> Catalog:
        """Regions, zones and instance types (vCPUs, memory, instance store) in the regions the catalog syncs."""
        regions = self.catalog_regions() if callable(self.catalog_regions) else self.catalog_regions
        return aws_catalog.fetch_catalog(
            self._client_for,
            home_region=self.home_region,
            regions=regions,
            type_patterns=self.catalog_instance_types,
        )

    def get_quota(self, *, region: str) -> Quota | None:
        """The region's running On-Demand standard vCPU quota (None where unreadable) and the vCPUs in use."""
        filters = [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        instances = self._describe(region, Filters=filters)
        return aws_catalog.get_quota(self._client_for, region=region, instances=instances, type_vcpus=self._type_vcpus)

    def _client(self, region: str, service: str = "ec2"):
        """The region's client for the service, created once under a lock: boto3 clients are thread-safe, sessions
        are not. The driver's own session (one account) keeps each service model loaded once for all its regions.
        """
        key = (service, region)
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    with translated_errors("create client"):
                        if self._session is None:
                            self._session = build_session(
                                self._credentials,
                                endpoint_url=self.endpoint_url,
                                region=self.home_region,
                                config=BOTO_CONFIG,
                            )
                        client = self._session.client(
                            service, region_name=region, endpoint_url=self.endpoint_url, config=BOTO_CONFIG
                        )
                    self._clients[key] = client
        return client

    def _client_for(self, service: str, region: str):
        """`_client` with the argument order the catalog helpers use."""
        return self._client(region, service)

    def _image_for(self, spec: NodeSpec) -> str:
        """The node's AMI: the cluster's own, the region's configured one, the default, or today's Ubuntu LTS."""
        options = spec.provider_options if isinstance(spec.provider_options, dict) else {}
        image_id = options.get("ami") or self.amis.get(spec.region) or self.default_ami
        if image_id:
            return str(image_id)
        image_id = self._resolved_amis.get(spec.region)
        if image_id is None:
            try:
                with translated_errors("get_parameter"):
                    answer = self._client(spec.region, "ssm").get_parameter(Name=self.ami_parameter)
            except PermanentProviderError as error:
                cause = error.__cause__
                if not (isinstance(cause, ClientError) and error_code(cause) == "ParameterNotFound"):
                    raise
                raise InvalidProviderRequest(
                    f"aws: no AMI configured for region {spec.region} (AWS_AMIS, AWS_DEFAULT_AMI or the cluster's "
                    f'provider_options "ami") and SSM parameter {self.ami_parameter} does not exist there'
                ) from error
            image_id = self._resolved_amis[spec.region] = answer["Parameter"]["Value"]
        return image_id

    def _describe(self, region: str, **params) -> list[dict]:
        """Every instance DescribeInstances returns for these parameters, across all pages."""
        paginator = self._client(region).get_paginator("describe_instances")
        with translated_errors("describe_instances"):
            # Collected inside the error translation: pages are fetched lazily while iterating.
            return [
                instance
                for page in paginator.paginate(**params)
                for reservation in page.get("Reservations", [])
                for instance in reservation.get("Instances", [])
            ]

    def _root_device_name(self, region: str, image_id: str) -> str:
        """The AMI's root device, so the disk size applies to the root volume instead of adding a second disk."""
        key = (region, image_id)
        if key not in self._root_devices:
            try:
                with translated_errors("describe_images"):
                    images = self._client(region).describe_images(ImageIds=[image_id]).get("Images", [])
            except PermanentProviderError:
                # An unknown AMI is reported by RunInstances with its own, clearer error; guess the device here.
                return DEFAULT_ROOT_DEVICE
            self._root_devices[key] = (images[0].get("RootDeviceName") if images else None) or DEFAULT_ROOT_DEVICE
        return self._root_devices[key]

    def _provider_option_params(self, spec: NodeSpec) -> dict:
        """RunInstances parameters for Tutum's AWS provider options (`vpc` and `iam`)."""
        options = spec.provider_options or {}
        if not isinstance(options, dict):
            raise InvalidProviderRequest("aws: provider_options must be an object")
        params: dict[str, Any] = {}
        vpc = options.get("vpc")
        if vpc is not None:
            if not isinstance(vpc, dict) or not vpc.get("id"):
                raise InvalidProviderRequest('aws: provider_options "vpc" needs an "id"')
            subnets = _string_list(vpc.get("subnets"), "vpc.subnets")
            security_groups = _string_list(vpc.get("security_groups"), "vpc.security_groups")
            if not subnets:
                subnets = self._vpc_subnets(spec, vpc["id"])
            params["SubnetId"] = _spread(subnets, spec.node_uuid)
            if security_groups:
                params["SecurityGroupIds"] = security_groups
        iam = options.get("iam")
        if iam is not None:
            if not isinstance(iam, dict) or not iam.get("instance_profile_name"):
                raise InvalidProviderRequest('aws: provider_options "iam" needs an "instance_profile_name"')
            params["IamInstanceProfile"] = {"Name": str(iam["instance_profile_name"])}
        return params

    def _vpc_subnets(self, spec: NodeSpec, vpc_id: str) -> list[str]:
        """The VPC's subnets (in the requested zone, if any), for a `vpc` option that names no subnets."""
        filters = [{"Name": "vpc-id", "Values": [vpc_id]}]
        if spec.availability_zone:
            filters.append({"Name": "availability-zone", "Values": [spec.availability_zone]})
        with translated_errors("describe_subnets"):
            pages = self._client(spec.region).get_paginator("describe_subnets").paginate(Filters=filters)
            subnets = sorted(subnet["SubnetId"] for page in pages for subnet in page.get("Subnets", []))
        if not subnets:
            raise InvalidProviderRequest(f"aws: VPC {vpc_id} has no subnet in {spec.availability_zone or spec.region}")
        return subnets

    def _tag_list(self, spec: NodeSpec) -> list[dict[str, str]]:
        """Our tags in EC2's shape, plus a Name so people can tell the instances apart in the console."""
        tags = {"Name": f"tutum-{spec.node_uuid}", **self.tags_for(spec)}
        return [{"Key": key, "Value": value} for key, value in tags.items()]

    def _to_instance(self, item: dict, region: str) -> Instance:
        """The provider-neutral view of one DescribeInstances/RunInstances instance."""
        tags = {tag["Key"]: tag["Value"] for tag in item.get("Tags", [])}
        ec2_state = item.get("State", {}).get("Name", "")
        launch_time = item.get("LaunchTime")
        return Instance(
            instance_id=item["InstanceId"],
            state=EC2_STATES.get(ec2_state, InstanceState.UNKNOWN),
            region=region,
            node_uuid=tags.get(NODE_UUID_TAG),
            cluster_uuid=tags.get(CLUSTER_UUID_TAG),
            public_ip=item.get("PublicIpAddress"),
            availability_zone=item.get("Placement", {}).get("AvailabilityZone"),
            extra={
                "ec2_state": ec2_state,
                "state_reason": item.get("StateReason", {}).get("Message") or None,
                "instance_type": item.get("InstanceType"),
                "image_id": item.get("ImageId"),
                "private_ip": item.get("PrivateIpAddress"),
                "subnet_id": item.get("SubnetId"),
                "vpc_id": item.get("VpcId"),
                "security_group_ids": [group["GroupId"] for group in item.get("SecurityGroups", [])],
                "iam_instance_profile_arn": item.get("IamInstanceProfile", {}).get("Arn"),
                "launch_time": launch_time.isoformat() if hasattr(launch_time, "isoformat") else launch_time,
                "tags": tags,
            },
        )


def _is_unknown_instance(error: PermanentProviderError) -> bool:
    """Whether EC2 refused the call because it does not know the instance id (any more)."""
    cause = error.__cause__
    return isinstance(cause, ClientError) and error_code(cause) in UNKNOWN_INSTANCE_CODES


def _string_list(value: Any, option: str) -> list[str]:
    """A provider option that must be a list of ids (a single id is accepted too)."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(item, str) and item for item in value):
        return list(value)
    raise InvalidProviderRequest(f'aws: provider_options "{option}" must be a list of ids')


def _spread(choices: list[str], node_uuid: str) -> str:
    """Pick one of several subnets by the node's uuid: nodes spread across them, and a retry picks the same one."""
    index = int.from_bytes(hashlib.sha256(node_uuid.encode()).digest()[:4], "big") % len(choices)
    return choices[index]
