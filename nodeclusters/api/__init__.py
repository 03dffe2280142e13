"""The Tutum-compatible REST API: wire-format modules, serializers, views and URLs."""
