"""The API objects, the HTTP transport and the Stream API of the Tutum client."""
