"""Credentials: python-tutum's `tutum.auth` (authenticate, is_authenticated, logout, load_from_file,
get_auth_header) and the `~/.tutum` file the official CLI writes."""

from __future__ import annotations

import base64
import configparser
import os
from urllib.parse import urlsplit, urlunsplit

import tutum

AUTH_SECTION = "auth"


def encode_basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def load_config(path: str = "~/.tutum") -> dict[str, str]:
    """`[auth]` of the config file: `user`, `apikey` and `basic_auth` where present (quotes stripped)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(os.path.expanduser(path))
    except (configparser.Error, OSError, UnicodeDecodeError):
        return {}
    if not parser.has_section(AUTH_SECTION):
        return {}
    found = {}
    for option in ("user", "apikey", "basic_auth"):
        value = parser.get(AUTH_SECTION, option, fallback="").strip().strip("\"'")
        if value:
            found[option] = value
    return found


def load_from_file(f: str = "~/.tutum") -> tuple[str | None, str | None]:
    """python-tutum's: the basic auth and the `user:apikey` of the config file, or (None, None)."""
    config = load_config(f)
    apikey_auth = f"{config['user']}:{config['apikey']}" if config.get("user") and config.get("apikey") else None
    return config.get("basic_auth"), apikey_auth


def stream_host_beside(rest_host: str) -> str:
    """The stream server where `make run` puts it: the REST host's address with a websocket scheme, port + 1."""
    parts = urlsplit(rest_host)
    scheme = "wss" if parts.scheme == "https" else "ws"
    netloc = parts.netloc
    if parts.port:
        netloc = f"{parts.hostname}:{parts.port + 1}"
    return urlunsplit((scheme, netloc, "", "", ""))


def get_auth_header() -> dict[str, str]:
    """The `Authorization` header for the current settings: `tutum_auth`, then user and apikey, then basic auth."""
    if getattr(tutum, "tutum_auth", None):
        return {"Authorization": tutum.tutum_auth}
    if getattr(tutum, "user", None) and getattr(tutum, "apikey", None):
        return {"Authorization": f"Basic {encode_basic(tutum.user, tutum.apikey)}"}
    if getattr(tutum, "basic_auth", None):
        basic = tutum.basic_auth
        return {"Authorization": f"Basic {basic.decode() if isinstance(basic, bytes) else basic}"}
    if getattr(tutum, "apikey_auth", None):
        return {"Authorization": f"ApiKey {tutum.apikey_auth}"}
    return {}


def verify_credential(username: str, password: str) -> None:
    """Raise TutumAuthError unless the server accepts `username` with `password` (an API key)."""
    from .http import send_request

    send_request("GET", "/auth", headers={"Authorization": f"Basic {encode_basic(username, password)}"})


def authenticate(username: str, password: str) -> None:
    """Check the credentials, then use them for every later request."""
    verify_credential(username, password)
    tutum.user, tutum.apikey = username, password


def is_authenticated() -> bool:
    return bool(get_auth_header())


def logout() -> None:
    tutum.tutum_auth = tutum.basic_auth = tutum.apikey_auth = None
    tutum.user = tutum.apikey = None
