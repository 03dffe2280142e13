"""Validation of `provider_options`, the provider-specific extras of a node cluster (AWS VPC, IAM and AMI only)."""

import re

from nodeclusters.exceptions import InvalidRequest

_MAX_ITEMS = 16


def _string(value, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 255 or "\x00" in value:
        raise InvalidRequest(f"provider_options.{where} must be a non-empty string of at most 255 characters.")
    return value


def _string_list(value, where: str) -> list[str]:
    if not isinstance(value, list) or len(value) > _MAX_ITEMS:
        raise InvalidRequest(f"provider_options.{where} must be a list of at most {_MAX_ITEMS} strings.")
    return [_string(item, f"{where}[{index}]") for index, item in enumerate(value)]


def _only_keys(value, where: str, allowed: set[str]) -> dict:
    if not isinstance(value, dict):
        raise InvalidRequest(f"provider_options{where} must be an object.")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise InvalidRequest(
            f"Unknown key(s) in provider_options{where}: {', '.join(unknown)}. Allowed: {', '.join(sorted(allowed))}."
        )
    return value


def validate_provider_options(*, provider_name: str, options) -> dict:
    """The cleaned options, or InvalidRequest saying exactly which key is wrong."""
    if options in (None, {}):
        return {}
    if provider_name != "aws":
        raise InvalidRequest(f"provider_options are not supported for provider '{provider_name}'; omit them.")
    _only_keys(options, "", {"vpc", "iam", "ami"})
    cleaned: dict = {}
    if "ami" in options:
        ami = _string(options["ami"], "ami")
        if not re.fullmatch(r"ami-[0-9a-f]{8,17}", ami):
            raise InvalidRequest('provider_options.ami must be an AMI id like "ami-0123456789abcdef0".')
        cleaned["ami"] = ami
    if "vpc" in options:
        vpc = _only_keys(options["vpc"], ".vpc", {"id", "subnets", "security_groups"})
        if "id" not in vpc:
            raise InvalidRequest("provider_options.vpc.id is required when provider_options.vpc is given.")
        cleaned["vpc"] = {"id": _string(vpc["id"], "vpc.id")}
        for key in ("subnets", "security_groups"):
            if key in vpc:
                cleaned["vpc"][key] = _string_list(vpc[key], f"vpc.{key}")
    if "iam" in options:
        iam = _only_keys(options["iam"], ".iam", {"instance_profile_name"})
        if "instance_profile_name" not in iam:
            raise InvalidRequest("provider_options.iam.instance_profile_name is required when iam is given.")
        cleaned["iam"] = {"instance_profile_name": _string(iam["instance_profile_name"], "iam.instance_profile_name")}
    return cleaned
