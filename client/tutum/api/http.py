"""The one HTTP transport: URLs, headers, retries honouring `Retry-After`, and errors as TutumApiError.

Every request goes through `request()`. A 429 or 503 is retried (with `Retry-After` when the server gives one,
else exponential backoff with jitter), as is a request that never reached the server; a read that timed out is
retried only when it was a GET. Writes go through `write()`, which draws one key per logical write before the
retry loop and sends it as `Idempotency-Key` with every try: the server runs the write once and replays its answer.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
import uuid
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

import tutum

from .exceptions import TutumApiError, TutumAuthError

logger = logging.getLogger("python-tutum")

#: Statuses that mean "not processed, come back later".
RETRY_STATUSES = frozenset({429, 503})
#: Methods whose repetition changes nothing: a timed-out read of these may be sent again.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The first backoff, doubled on each retry.
BACKOFF_BASE_SECONDS = 0.5


class Transport:
    """A pooled httpx client, rebuilt when the settings it was made with change."""

    def __init__(self) -> None:
        self._client: httpx.Client | None = None
        self._made_with: tuple = ()
        self._lock = threading.Lock()
        #: Replaced in tests to observe the waits without sleeping.
        self.sleep = time.sleep

    def client(self) -> httpx.Client:
        settings = (tutum.timeout,)
        with self._lock:
            if self._client is None or self._made_with != settings:
                if self._client is not None:
                    self._client.close()
                self._client = httpx.Client(timeout=tutum.timeout, follow_redirects=False)
                self._made_with = settings
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        content: str | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request (retrying as the module says); return a 2xx answer or raise TutumApiError."""
        method = method.upper()
        url = build_url(path)
        sent_headers = default_headers()
        sent_headers.update(headers or {})
        if json is not None or content is not None:
            sent_headers.setdefault("Content-Type", "application/json")
        attempt = 0
        while True:
            logger.debug("Request: %s %s %s", method, url, params or "")
            try:
                response = self.client().request(
                    method, url, params=_wire_params(params), json=json, content=content, headers=sent_headers
                )
            except httpx.TransportError as error:
                never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt < tutum.max_retries and (never_sent or method in IDEMPOTENT_METHODS):
                    self.sleep(backoff(attempt))
                    attempt += 1
                    continue
                raise TutumApiError(f"No Response ({method} {url}): {error}", method=method, url=url) from error
            logger.debug("Response: Status %s", response.status_code)
            if response.status_code in RETRY_STATUSES and attempt < tutum.max_retries:
                wait = retry_after(response)
                wait = backoff(attempt) if wait is None else wait
                if wait <= tutum.retry_max_wait:
                    logger.debug("Status %s: retrying in %.1f s", response.status_code, wait)
                    self.sleep(wait)
                    attempt += 1
                    continue
            if response.is_success:
                return response
            raise api_error(response, method, url)

    def write(self, method: str, path: str, *, json: Any = None, idempotency_key: str | None = None) -> httpx.Response:
        """A POST, PATCH or DELETE. `request()` sends the same headers on every retry of it."""
        # The server runs a write once per key and replays its answer to a repeat (`Idempotent-Replayed: true`).
        headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
        return self.request(method, path, json=json if json is not None else {}, headers=headers)


def new_idempotency_key() -> str:
    """A key for one logical write; `request()` resends it unchanged with every retry of that write."""
    return uuid.uuid4().hex


def default_headers() -> dict[str, str]:
    agent = f"python-tutum/{tutum.__version__}"
    if tutum.user_agent:
        agent = f"{tutum.user_agent} {agent}"
    headers = {"Accept": "application/json", "User-Agent": agent}
    headers.update(tutum.auth.get_auth_header())
    return headers


def build_url(path: str) -> str:
    """A path of the API (`nodecluster/<uuid>`), a resource URI or `meta.next` (`/api/v1/...`), or a full URL.

    Paths get the trailing slash every Tutum URI has; a query string is kept as it is.
    """
    if path.startswith(("http://", "https://")):
        return path
    base = tutum.base_url if tutum.base_url.endswith("/") else tutum.base_url + "/"
    route, _, query = path.partition("?")
    if route.startswith("/api/"):
        origin = urlsplit(base)
        url = f"{origin.scheme}://{origin.netloc}{route}"
    else:
        url = urljoin(base, route.strip("/"))
    if not url.endswith("/"):
        url += "/"
    return f"{url}?{query}" if query else url


def _wire_params(params: dict | None) -> dict | None:
    """Filters as the server reads them: objects by resource URI, booleans as true/false, None left out."""
    if not params:
        return params
    wired = {}
    for key, value in params.items():
        if value is None:
            continue
        if hasattr(value, "resource_uri"):
            value = value.resource_uri
        elif isinstance(value, bool):
            value = "true" if value else "false"
        wired[key] = value
    return wired


def backoff(attempt: int) -> float:
    """0.5 s, 1 s, 2 s, ... with up to a quarter of jitter, never more than `tutum.retry_max_wait`."""
    delay = BACKOFF_BASE_SECONDS * (2**attempt)
    return min(delay * (1 + random.random() / 4), tutum.retry_max_wait)


def retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds, from either of its forms (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def api_error(response: httpx.Response, method: str, url: str) -> TutumApiError:
    """The error for a non-2xx answer; the message is python-tutum's, the details are attributes."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    errors = body.get("errors") if isinstance(body, dict) else None
    details = {
        "status_code": response.status_code,
        "error": error,
        "errors": errors if isinstance(errors, dict) else None,
        "method": method,
        "url": url,
        "retry_after": retry_after(response),
    }
    if response.status_code == 401:
        return TutumAuthError("Not authorized", **details)
    return TutumApiError(f"Status {response.status_code} ({method} {url}). Response: {response.text}", **details)


#: The module's transport; `tutum.api.http.transport.close()` drops its connections.
transport = Transport()


def send_request(method: str, path: str, inject_header: bool = True, **kwargs) -> dict | None:
    """python-tutum's `send_request`: the answer's JSON (None for 204), with `tutum_action_uri` from the header."""
    data = kwargs.pop("data", None)
    response = transport.request(method, path, params=kwargs.pop("params", None), content=data, **kwargs)
    if response.status_code == 204 or not response.content:
        return None
    try:
        answer = response.json()
    except ValueError as error:
        raise TutumApiError(f"JSON Parse Error ({method} {response.url}). Response: {response.text}") from error
    if inject_header and isinstance(answer, dict):
        answer["tutum_action_uri"] = response.headers.get("X-Tutum-Action-URI", "")
    return answer
