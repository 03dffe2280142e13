"""Plain text answers (`Accept: text/plain` or `?format=text`) for what people read in a terminal: action logs."""

from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings


class PlainTextRenderer(BaseRenderer):
    """Renders a view's text as it is; a view offering it answers with a `str`."""

    media_type = "text/plain"
    format = "text"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return data.encode(self.charset)


def errors_as_json(response):
    """Error bodies stay JSON with an `error` string whatever media type the request asked for (every client
    parses them alike); errors found before negotiation already are, the others are switched here."""
    failed = isinstance(response, Response) and response.status_code >= 400
    if failed and isinstance(getattr(response, "accepted_renderer", None), PlainTextRenderer):
        renderer = api_settings.DEFAULT_RENDERER_CLASSES[0]()
        response.accepted_renderer = renderer
        response.accepted_media_type = renderer.media_type
    return response
