"""ASGI entry point: the stream server (Tutum's Stream API over websockets, and events as SSE).

The REST API stays on WSGI (gunicorn); this application serves only the stream's paths, on its own port, as
Tutum served its stream from its own host.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutum_api.settings")
django.setup()

from nodeclusters.stream.routing import stream_application  # noqa: E402  (needs the apps loaded)

application = stream_application()
