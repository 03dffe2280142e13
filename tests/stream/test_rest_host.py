"""The REST host's side of the stream: SSE clients are sent on to the stream server, query and all."""

import pytest


@pytest.mark.parametrize("path", ["/api/v1/events/", "/api/v1/events", "/api//v1/events/"])
def test_the_rest_host_sends_sse_clients_to_the_stream_server(client, settings, path):
    settings.STREAM_PUBLIC_URL = "http://stream.example.test:8001/"

    response = client.get(f"{path}?since=42", HTTP_ACCEPT="text/event-stream")

    assert response.status_code == 307
    assert response["Location"] == "http://stream.example.test:8001/api/v1/events/?since=42"
    assert response.json()["location"] == response["Location"]
