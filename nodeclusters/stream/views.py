"""The REST host's side of the stream: `GET /api/v1/events/` is sent on to the stream server, which serves SSE.

gunicorn's threads would each be held by one open event stream, so the REST host does not stream itself.
"""

from django.conf import settings
from django.http import JsonResponse


def events_on_stream_host(request) -> JsonResponse:
    """307 to the same path and query on the stream server (`STREAM_PUBLIC_URL`)."""
    query = request.META.get("QUERY_STRING", "")
    location = f"{settings.STREAM_PUBLIC_URL.rstrip('/')}/api/v1/events/" + (f"?{query}" if query else "")
    response = JsonResponse(
        {"message": f"Events are streamed by the stream server: {location}", "location": location}, status=307
    )
    response["Location"] = location
    return response
