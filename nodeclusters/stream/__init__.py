"""Tutum's Stream API: events and action logs over websockets (and events as SSE), served by the ASGI server."""
