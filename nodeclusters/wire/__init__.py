"""Tutum's wire format below the services: resource URIs and RFC 2822 dates, used by services, filters and the API."""
