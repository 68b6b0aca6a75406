"""Bounded HTTP with the standard library: a timeout on every call, a size limit on every answer,
http(s) only, no redirect from https to anything else."""
from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any

MAX_RESPONSE_BYTES = 1024 * 1024
USER_AGENT = "authserver-verifier/0.1"


class FetchError(Exception):
    """The URL could not be fetched, or its answer was not usable."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: Message
    body: bytes

    def json_object(self) -> dict[str, Any]:
        try:
            document = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise FetchError("the answer is not JSON") from None
        if not isinstance(document, dict):
            raise FetchError("the answer is not a JSON object")
        return document


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow a few GET redirects, never away from https and never out of http(s)."""

    max_redirections = 3

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old_scheme = urllib.parse.urlsplit(req.full_url).scheme
        new_scheme = urllib.parse.urlsplit(newurl).scheme
        if req.get_method() != "GET":
            return None  # a POST is never redirected: urllib then raises HTTPError with the 3xx status
        if new_scheme not in ("http", "https") or (old_scheme == "https" and new_scheme != "https"):
            raise FetchError(f"refused a redirect from {old_scheme} to {new_scheme or 'a relative URL'}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.OpenerDirector()
for _handler in (urllib.request.ProxyHandler(), urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(),
                 urllib.request.HTTPDefaultErrorHandler(), _RedirectHandler(), urllib.request.HTTPErrorProcessor()):
    _opener.add_handler(_handler)


def check_http_url(url: Any) -> str:
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https") \
            or not urllib.parse.urlsplit(url).netloc:
        raise FetchError("not an http(s) URL")
    return url


def fetch(url: str, *, timeout: float, data: bytes | None = None, headers: dict[str, str] | None = None,
          max_bytes: int = MAX_RESPONSE_BYTES) -> Response:
    """GET (or POST when ``data`` is given) ``url``; any HTTP status is returned, transport failures
    raise FetchError. The whole call is bounded by ``timeout`` seconds of silence per socket
    operation and by ``timeout`` in total while reading the body."""
    check_http_url(url)
    request = urllib.request.Request(
        url, data=data, method="POST" if data is not None else "GET",
        headers={"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})},
    )
    deadline = time.monotonic() + timeout
    try:
        try:
            answer = _opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            answer = error
        with answer:
            body = _read(answer, max_bytes, deadline)
            return Response(answer.getcode(), answer.headers, body)
    except FetchError:
        raise
    except urllib.error.URLError as error:
        raise FetchError(f"cannot reach {_origin(url)}: {error.reason}") from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise FetchError(f"cannot reach {_origin(url)}: {type(error).__name__}") from None


def _read(answer, max_bytes: int, deadline: float) -> bytes:
    chunks, total = [], 0
    while True:
        chunk = answer.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise FetchError(f"the answer is larger than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise FetchError("the answer took too long")
        chunks.append(chunk)


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def max_age(headers: Message) -> int | None:
    """Seconds the answer may be cached per its Cache-Control (0 for no-store/no-cache), or None."""
    directives: dict[str, str] = {}
    for value in headers.get_all("Cache-Control") or ():
        for part in value.split(","):
            name, _, argument = part.strip().partition("=")
            directives[name.strip().lower()] = argument.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return 0
    if "max-age" in directives:
        try:
            return max(0, int(directives["max-age"]))
        except ValueError:
            return None
    return None
