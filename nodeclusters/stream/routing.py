"""The stream server's routes: Tutum's websocket paths (with and without their trailing slash), SSE, health."""

from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import re_path

from nodeclusters.wire.grammar import UUID_REGEX

from . import consumers
from .auth import StreamAuthMiddleware

websocket_routes = [
    # python-tutum opens /v1/events, go-tutum /v1/events/; merged slashes as on the REST host.
    re_path(r"^/*v1/+events/*$", consumers.EventsConsumer.as_asgi()),
    re_path(rf"^/*v1/+action/+(?P<uuid>{UUID_REGEX})/+logs/*$", consumers.ActionLogsConsumer.as_asgi()),
    re_path(r"", consumers.not_found),
]

http_routes = [
    re_path(r"^/*api/+v1/+events/*$", consumers.EventStream()),
    re_path(r"^/*v1/+events/*$", consumers.EventStream()),
    re_path(r"^/*(healthz|readyz)$", consumers.health),
    re_path(r"", consumers.not_found),
]


def stream_application():
    """The ASGI application of the stream server (`tutum_api.asgi:application`)."""
    return ProtocolTypeRouter(
        {
            "http": StreamAuthMiddleware(URLRouter(http_routes)),
            "websocket": StreamAuthMiddleware(URLRouter(websocket_routes)),
        }
    )
