"""Public keys fetched from URLs: a client's `jwks_uri` and trusted issuers' JWKS.

The fetch is a server-side request to an address someone else chose, so every rule that keeps it
from reaching the server's own network is here, in one place:

- https only (plain http only with ``allow_insecure``), TLS verification always on;
- the host is resolved once, every address is checked (no private, loopback, link-local,
  multicast, reserved or unspecified destination), and the connection goes to a checked address
  while SNI, certificate name and ``Host`` stay the URL's name, so DNS rebinding cannot swap the
  address between the check and the connection;
- redirects are never followed: a 3xx answer is an error naming its ``Location``;
- at most ``max_bytes`` are read (headers included, with a fixed allowance) and the whole fetch,
  DNS included, ends within ``timeout`` seconds;
- key sets are cached per Cache-Control max-age clamped to [min_ttl, max_ttl], refetched on an
  unknown ``kid`` at most once per ``unknown_kid_interval``, and the last good set is served while
  the URL fails, up to ``max_stale`` seconds past its expiry.

Nothing here touches Flask or the database: callers build one `KeyFetcher` and share it.
"""
from __future__ import annotations

import http.client
import io
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from . import clock
from .crypto.keys import PRIVATE_JWK_MEMBERS, ParsedPublicKey, parse_public_key
from .errors import DomainError, InvalidInput

log = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"  # OpenID Connect Discovery 1.0 §4
ACCEPT = "application/jwk-set+json, application/json"  # RFC 7517 §8.5.1
USER_AGENT = "authserver-keyfetch"
MAX_URL_LENGTH = 2048
HEADER_ALLOWANCE = 16384  # bytes of status line and headers read on top of max_bytes
EXCERPT_LENGTH = 80
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
SUPPORTED_KTY = ("RSA", "EC", "OKP")
JWK_KEY_MEMBERS = ("kty", "kid", "use", "alg", "n", "e", "crv", "x", "y")  # x5c and the like are not needed

# Destination categories; `allow_insecure` permits only the first two (development, tests).
LOOPBACK, PRIVATE = "loopback", "private"
LINK_LOCAL, MULTICAST, UNSPECIFIED, RESERVED = "link-local", "multicast", "unspecified", "reserved"
INSECURE_ALLOWED = frozenset({LOOPBACK, PRIVATE})

_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 carrier-grade NAT
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # RFC 791 "this network": 0.x.x.x reaches the host itself
_IPV4_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
_IPV6_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")  # RFC 4193
_IPV6_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # RFC 3879, deprecated but still routed internally
_IPV6_ZERO_PREFIX = ipaddress.ip_network("::/8")  # IPv4-compatible and other reserved forms

Resolver = Callable[[str, int], list[str]]


class KeyFetchError(DomainError):
    """Keys could not be fetched from a URL; `message` names the URL and the rule that failed."""

    def __init__(self, message: str, *, url: str | None = None):
        super().__init__(message)
        self.url = url


@dataclass(frozen=True)
class FetchStatus:
    """What the fetcher knows about one URL, for the audit log and the console (times: epoch seconds)."""

    url: str
    key_ids: tuple[str, ...] = ()
    last_success: int | None = None  # when the cached value was fetched
    expires_at: int | None = None  # when it is fetched again
    stale_until: int | None = None  # when it is dropped if the URL keeps failing
    last_error: str | None = None  # the newest failure, cleared by a success
    last_error_at: int | None = None


def destination_refusal(address: str, *, allow_insecure: bool = False) -> str | None:
    """Why a fetch may not connect to this IP address (a category such as "loopback"), or None.

    Addresses that embed an IPv4 address (IPv4-mapped, 6to4, NAT64) are judged by that address.
    """
    category = _address_category(ipaddress.ip_address(address))
    if category is None or (allow_insecure and category in INSECURE_ALLOWED):
        return None
    return category


def _address_category(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return _address_category(embedded)
        ip = ipaddress.IPv6Address(int(ip))  # without a zone index (%eth0), which changes nothing here
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        return UNSPECIFIED
    if ip.is_loopback:
        return LOOPBACK
    if ip.is_link_local:
        return LINK_LOCAL
    if ip.is_multicast:
        return MULTICAST
    if isinstance(ip, ipaddress.IPv4Address):
        if ip in _SHARED_ADDRESS_SPACE or any(ip in net for net in _IPV4_PRIVATE):
            return PRIVATE
    elif ip in _IPV6_UNIQUE_LOCAL or ip in _IPV6_SITE_LOCAL:
        return PRIVATE
    elif ip in _IPV6_ZERO_PREFIX:
        return RESERVED
    if not ip.is_global:  # documentation, benchmarking, 240/4, broadcast, Teredo, ...
        return RESERVED
    return None


def excerpt(text: str | bytes, limit: int = EXCERPT_LENGTH) -> str:
    """A short, printable rendering of text that came from elsewhere (error messages, logs)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    shown = "".join(ch if ch.isprintable() else "?" for ch in text[:limit])
    return shown + ("…" if len(text) > limit else "")


def _redacted(url: str) -> str:
    """The URL as logs and messages show it: without query or fragment (they may carry credentials)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return excerpt(url)
    shown = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme and parts.netloc else url.split("?")[0]
    return excerpt(shown + ("?…" if parts.query else ""), 200)


@dataclass(frozen=True)
class _Target:
    url: str
    https: bool
    host: str  # as in the URL (brackets removed): the name TLS verifies and Host carries
    port: int
    path: str  # path and query, as sent in the request line


def check_url(url: str, *, allow_insecure: bool = False) -> None:
    """Refuse a URL the fetcher would never fetch (scheme, form); the address rule runs at fetch time."""
    _parse_target(url, allow_insecure)


def _parse_target(url: str, allow_insecure: bool) -> _Target:
    if not isinstance(url, str) or not url:
        raise KeyFetchError("The key URL is empty.", url=None)
    if len(url) > MAX_URL_LENGTH:
        raise KeyFetchError(f"The key URL is longer than {MAX_URL_LENGTH} characters.", url=None)
    if not url.isascii() or not url.isprintable() or " " in url:
        raise KeyFetchError(f"The key URL {excerpt(url)} must be printable ASCII without spaces "
                            "(write an international host name in its xn-- form).", url=url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise KeyFetchError(f"The key URL {_redacted(url)} is malformed.", url=url) from None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_insecure):
        raise KeyFetchError(f"The key URL {_redacted(url)} must use https.", url=url)
    if not parts.hostname:
        raise KeyFetchError(f"The key URL {_redacted(url)} has no host.", url=url)
    if parts.username is not None or parts.password is not None:
        raise KeyFetchError(f"The key URL {_redacted(url)} must not carry credentials (user@host).", url=url)
    if parts.fragment or url.endswith("#"):
        raise KeyFetchError(f"The key URL {_redacted(url)} must not have a fragment (#…).", url=url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    https = scheme == "https"
    return _Target(url=url, https=https, host=parts.hostname, port=port or (443 if https else 80), path=path)


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver, in its order of preference."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class _DeadlineSocket:
    """The connected socket as http.client uses it: every read and write ends by the deadline, and
    reading stops once more than `limit` bytes arrived, so neither a trickling nor an endless
    answer holds a worker (http.client's own timeout restarts with every byte)."""

    def __init__(self, sock: socket.socket, deadline: float, limit: int):
        self._sock, self._deadline, self._limit, self.received = sock, deadline, limit, 0

    def _arm(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        self._sock.settimeout(remaining)

    def sendall(self, data: bytes) -> None:
        self._arm()
        self._sock.sendall(data)

    def recv_into(self, buffer: Any) -> int:
        if self.received > self._limit:
            raise _TooLarge()
        self._arm()
        count = self._sock.recv_into(buffer)
        self.received += count
        return count

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self))

    def close(self) -> None:
        pass  # http.client closes its socket before it reads the body; `release` closes it when the fetch ends

    def release(self) -> None:
        self._sock.close()


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket):
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)


class _TooLarge(Exception):
    pass


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to one already-checked IP address; TLS and Host use the URL's name."""

    def __init__(self, target: _Target, address: str, deadline: float, limit: int, tls: ssl.SSLContext | None):
        super().__init__(target.host, target.port)
        self.default_port = 443 if tls is not None else 80  # Host carries the port only when it is not the default
        self._address, self._deadline, self._limit, self._tls, self._sni = address, deadline, limit, tls, target.host

    def connect(self) -> None:
        ip = ipaddress.ip_address(address=self._address)
        sock = socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(self._deadline - time.monotonic(), 0.001))
            sock.connect((self._address, self.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._sni)
        except BaseException:
            sock.close()
            raise
        self.sock = self._deadline_socket = _DeadlineSocket(sock, self._deadline, self._limit)

    def release(self) -> None:
        self.close()
        if getattr(self, "_deadline_socket", None) is not None:
            self._deadline_socket.release()


@dataclass
class _UrlState:
    """One URL's cache entry. Fields change only under `lock`; readers without the lock see
    `cached`, replaced as a whole."""

    url: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    cached: tuple[Any, int, int] | None = None  # (value, fetched_at, expires_at)
    last_attempt_at: int | None = None
    last_error: str | None = None
    last_error_at: int | None = None


class KeyFetcher:
    """Fetches, checks and caches public key sets from URLs; one instance is shared by all threads.

    allow_insecure permits plain http and loopback or private destinations (development and tests
    only; link-local, multicast, reserved and unspecified addresses stay refused). ca_file replaces
    the system's trusted CAs. Times are seconds.
    """

    def __init__(self, allow_insecure: bool = False, ca_file: str | None = None, timeout: float = 5,
                 max_bytes: int = 65536, min_ttl: int = 300, max_ttl: int = 86400, unknown_kid_interval: int = 60,
                 max_stale: int = 86400, retry_interval: int = 60, resolver: Resolver | None = None):
        self.allow_insecure = allow_insecure
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.min_ttl, self.max_ttl = min_ttl, max(max_ttl, min_ttl)
        self.unknown_kid_interval = unknown_kid_interval
        self.max_stale = max_stale
        self.retry_interval = retry_interval
        self._resolver = resolver or system_resolver
        self._ca_file = ca_file
        if ca_file:  # an operator's CA file is read at start, so a bad one stops the start, not a fetch
            self.__dict__["_tls"] = self._build_tls()
        self._states: dict[tuple[str, str], _UrlState] = {}
        self._states_lock = threading.Lock()

    @cached_property
    def _tls(self) -> ssl.SSLContext:
        """The system's trusted CAs are loaded at the first fetch, not with the application: it takes
        tens of milliseconds, and most deployments never fetch a key."""
        return self._build_tls()

    def _build_tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self._ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    # -- public API --------------------------------------------------------------------------

    def keys(self, url: str) -> dict[str, ParsedPublicKey]:
        """The key set at `url` by kid, from the cache while fresh; KeyFetchError when none is usable."""
        return dict(self._cached_or_fetch("jwks", url, _parse_jwks))

    def key_for(self, url: str, kid: str | None) -> ParsedPublicKey | None:
        """The key with this kid, refetching the set (rate-limited) when the kid is unknown.

        With kid None: the set's only key, or None when it holds several."""
        keys = self._cached_or_fetch("jwks", url, _parse_jwks)
        found = _select(keys, kid)
        if found is not None:
            return found
        state = self._state("jwks", url)
        with state.lock:
            if state.cached is not None and (found := _select(state.cached[0], kid)) is not None:
                return found  # another thread's refetch brought it
            if state.last_attempt_at is not None and clock.now() - state.last_attempt_at < self.unknown_kid_interval:
                return None
            try:
                return _select(self._fetch_into(state, _parse_jwks), kid)
            except KeyFetchError:
                return None  # the current set stays; the failure is in status()

    def discover_jwks_uri(self, issuer: str) -> str:
        """The `jwks_uri` of an OpenID provider, from `{issuer}/.well-known/openid-configuration`,
        whose `issuer` must equal the configured one exactly (OpenID Connect Discovery 1.0 §4.3)."""
        _parse_target(issuer, self.allow_insecure)
        if "?" in issuer:
            raise KeyFetchError(f"The issuer {_redacted(issuer)} must not have a query.", url=issuer)
        document_url = issuer.rstrip("/") + DISCOVERY_PATH
        return str(self._cached_or_fetch("discovery", document_url, lambda body, url: _parse_discovery(
            body, url, issuer, self.allow_insecure)))

    def status(self, url: str) -> FetchStatus:
        """What is known about a key set URL (or a discovery document URL) that was asked for."""
        with self._states_lock:
            state = self._states.get(("jwks", url)) or self._states.get(("discovery", url))
        if state is None:
            return FetchStatus(url=url)
        cached = state.cached  # read without the lock: a status view never waits for a fetch
        key_ids = tuple(cached[0]) if cached and isinstance(cached[0], dict) else ()
        return FetchStatus(url=url, key_ids=key_ids, last_success=cached[1] if cached else None,
                           expires_at=cached[2] if cached else None,
                           stale_until=cached[2] + self.max_stale if cached else None,
                           last_error=state.last_error, last_error_at=state.last_error_at)

    def forget(self, url: str) -> None:
        """Drop what is cached for a URL (its registration was removed); the next use fetches again."""
        with self._states_lock:
            self._states.pop(("jwks", url), None)
            self._states.pop(("discovery", url), None)

    # -- cache ---------------------------------------------------------------------------------

    def _state(self, kind: str, url: str) -> _UrlState:
        with self._states_lock:
            state = self._states.get((kind, url))
            if state is None:
                state = self._states[(kind, url)] = _UrlState(url=url)
            return state

    def _cached_or_fetch(self, kind: str, url: str, parse: Callable[[bytes, str], Any]) -> Any:
        state = self._state(kind, url)
        cached = state.cached
        if cached is not None and clock.now() < cached[2]:
            return cached[0]
        if not state.lock.acquire(blocking=False):
            # Another thread is fetching this URL: serve the stale value rather than wait, if there is one.
            if cached is not None and clock.now() < cached[2] + self.max_stale:
                return cached[0]
            state.lock.acquire()
        try:
            now = clock.now()
            cached = state.cached
            if cached is not None and now < cached[2]:
                return cached[0]  # fetched by the thread we waited for
            if cached is not None and now >= cached[2] + self.max_stale:
                state.cached = cached = None  # too old to trust even while the URL fails
            recently_failed = (state.last_error_at is not None and state.last_attempt_at == state.last_error_at
                               and now - state.last_error_at < self.retry_interval)
            if recently_failed:
                if cached is not None:
                    return cached[0]
                raise KeyFetchError(state.last_error or "The last fetch failed.", url=url)
            try:
                return self._fetch_into(state, parse)
            except KeyFetchError:
                if state.cached is not None:
                    return state.cached[0]  # stale-while-error, until max_stale past expiry
                raise
        finally:
            state.lock.release()

    def _fetch_into(self, state: _UrlState, parse: Callable[[bytes, str], Any]) -> Any:
        """Fetch and parse under state.lock; on failure record and log it, keep the cached value, raise."""
        state.last_attempt_at = clock.now()
        try:
            body, max_age = self._get(state.url)
            value = parse(body, state.url)
        except KeyFetchError as exc:
            state.last_error, state.last_error_at = exc.message, state.last_attempt_at
            stale = state.cached is not None
            log.warning("key fetch failed for %s: %s%s", _redacted(state.url), exc.message,
                        " (serving the copy fetched before)" if stale else "")
            raise
        now = clock.now()
        ttl = min(max(max_age if max_age is not None else self.min_ttl, self.min_ttl), self.max_ttl)
        state.cached = (value, now, now + ttl)
        state.last_error = state.last_error_at = None
        return value

    # -- network -------------------------------------------------------------------------------

    def _get(self, url: str) -> tuple[bytes, int | None]:
        """GET url under every rule: (body, Cache-Control max-age or None)."""
        shown = _redacted(url)
        target = _parse_target(url, self.allow_insecure)
        deadline = time.monotonic() + self.timeout
        addresses = self._resolve(target, deadline)
        connection: _PinnedConnection | None = None
        errors: list[str] = []
        try:
            for address in addresses:
                connection = _PinnedConnection(target, address, deadline, self.max_bytes + HEADER_ALLOWANCE,
                                               self._tls if target.https else None)
                try:
                    connection.connect()
                    break
                except ssl.SSLError as exc:
                    raise KeyFetchError(f"TLS with {target.host} failed at {shown}: {_tls_reason(exc)}.",
                                        url=url) from None
                except TimeoutError:
                    raise KeyFetchError(f"Connecting for {shown} took longer than {self.timeout:g} s.",
                                        url=url) from None
                except OSError as exc:
                    errors.append(f"{address}: {exc.strerror or exc}")
                    connection.release()
                    connection = None
            if connection is None:
                raise KeyFetchError(f"Could not connect to {target.host} port {target.port} for {shown} "
                                    f"({'; '.join(errors)}).", url=url)
            return self._exchange(connection, target, shown)
        except TimeoutError:
            raise KeyFetchError(f"Fetching {shown} took longer than {self.timeout:g} s.", url=url) from None
        except _TooLarge:
            raise KeyFetchError(f"The answer from {shown} is larger than {self.max_bytes} bytes.", url=url) from None
        except (http.client.HTTPException, OSError) as exc:
            reason = excerpt(str(exc) or type(exc).__name__)
            raise KeyFetchError(f"Fetching {shown} failed: {reason}.", url=url) from None
        finally:
            if connection is not None:
                connection.release()

    def _exchange(self, connection: _PinnedConnection, target: _Target, shown: str) -> tuple[bytes, int | None]:
        connection.putrequest("GET", target.path, skip_accept_encoding=True)
        connection.putheader("Accept", ACCEPT)
        connection.putheader("Accept-Encoding", "identity")
        connection.putheader("User-Agent", USER_AGENT)
        connection.putheader("Connection", "close")
        connection.endheaders()
        response = connection.getresponse()
        if response.status in REDIRECT_STATUSES:
            location = response.getheader("Location") or "(no Location)"
            raise KeyFetchError(f"{shown} answered HTTP {response.status}, a redirect to {excerpt(location)}; "
                                "redirects are not followed: use the final URL.", url=target.url)
        if response.status != 200:
            raise KeyFetchError(f"{shown} answered HTTP {response.status} {excerpt(response.reason or '', 40)}".rstrip()
                                + ".", url=target.url)
        encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            raise KeyFetchError(f"{shown} answered with Content-Encoding {excerpt(encoding, 20)}; "
                                "only uncompressed answers are read.", url=target.url)
        length = response.getheader("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
            raise KeyFetchError(f"The answer from {shown} is larger than {self.max_bytes} bytes "
                                f"(Content-Length {int(length)}).", url=target.url)
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = response.read(min(16384, self.max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge()
        return b"".join(chunks), _max_age(response.getheader("Cache-Control"))

    def _resolve(self, target: _Target, deadline: float) -> list[str]:
        """Resolve once, within the deadline, and check every address: the connection goes to one of these."""
        shown = _redacted(target.url)
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["addresses"] = self._resolver(target.host, target.port)
            except Exception as exc:  # noqa: BLE001 - reported to the caller below
                outcome["error"] = exc

        worker = threading.Thread(target=run, name="keyfetch-resolve", daemon=True)
        worker.start()
        worker.join(max(deadline - time.monotonic(), 0))
        if worker.is_alive():
            raise KeyFetchError(f"Resolving {target.host} for {shown} took longer than {self.timeout:g} s.",
                                url=target.url)
        if "error" in outcome or not outcome.get("addresses"):
            reason = outcome.get("error")
            detail = getattr(reason, "strerror", None) or (str(reason) if reason else "no addresses")
            raise KeyFetchError(f"Cannot resolve {target.host} for {shown}: {excerpt(detail)}.", url=target.url)
        addresses: list[str] = outcome["addresses"]
        for address in addresses:
            try:
                refusal = destination_refusal(address, allow_insecure=self.allow_insecure)
            except ValueError:
                refusal = "not an IP address"
            if refusal is not None:
                raise KeyFetchError(f"{target.host} resolves to {excerpt(address, 60)}, a {refusal} address: "
                                    f"keys are fetched only from public addresses ({shown}).", url=target.url)
        return addresses


def _tls_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted ({excerpt(exc.verify_message or str(exc))})"
    return excerpt(exc.reason or str(exc))


def _max_age(cache_control: str | None) -> int | None:
    """max-age of a Cache-Control header (RFC 9111 §5.2.2.1); None when absent or invalid."""
    if not cache_control:
        return None
    found: int | None = None
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        if name.strip().lower() != "max-age":
            continue
        value = value.strip().strip('"')
        if not value.isdigit() or found is not None:
            return None  # malformed or repeated: treated as absent
        found = int(value)
    return found


def _select(keys: dict[str, ParsedPublicKey], kid: str | None) -> ParsedPublicKey | None:
    if kid is None:
        return next(iter(keys.values())) if len(keys) == 1 else None
    return keys.get(kid)


def _load_json(body: bytes, url: str, what: str) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise KeyFetchError(f"The answer from {_redacted(url)} is not a JSON {what}: it starts with "
                            f"\"{excerpt(body.lstrip()[:EXCERPT_LENGTH], 40)}\".", url=url) from None


def _parse_jwks(body: bytes, url: str) -> dict[str, ParsedPublicKey]:
    """The public signing keys of a JWK Set (RFC 7517 §5), by kid.

    A private member anywhere refuses the whole set (the publisher leaks secrets); keys for other
    uses, of unsupported types or too weak are skipped; a key without kid is allowed only alone."""
    shown = _redacted(url)
    document = _load_json(body, url, "JWK Set")
    members = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(members, list):
        raise KeyFetchError(f"The answer from {shown} is not a JWK Set (a JSON object with a \"keys\" array).", url=url)
    keys: dict[str, ParsedPublicKey] = {}
    skipped: list[str] = []
    for position, member in enumerate(members, start=1):
        if not isinstance(member, dict):
            raise KeyFetchError(f"Key {position} of the JWK Set at {shown} is not a JSON object.", url=url)
        private = [name for name in PRIVATE_JWK_MEMBERS if name in member]
        if private:
            raise KeyFetchError(f"The JWK Set at {shown} holds private key material (key {position} has "
                                f"\"{private[0]}\"); it is refused as a whole.", url=url)
        if "kid" not in member and len(members) != 1:
            raise KeyFetchError(f"Key {position} of the JWK Set at {shown} has no \"kid\"; a kid is required "
                                "when the set holds more than one key.", url=url)
        if member.get("use", "sig") != "sig":
            skipped.append(f"key {position}: \"use\" is not \"sig\"")
            continue
        key_ops = member.get("key_ops")
        if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
            skipped.append(f"key {position}: \"key_ops\" lacks \"verify\"")
            continue
        if member.get("kty") not in SUPPORTED_KTY:
            skipped.append(f"key {position}: unsupported \"kty\" {excerpt(str(member.get('kty')), 20)}")
            continue
        try:
            parsed = parse_public_key(json.dumps({name: member[name] for name in JWK_KEY_MEMBERS if name in member}))
        except InvalidInput as exc:
            skipped.append(f"key {position}: {exc.message}")
            continue
        if parsed.kid in keys:
            raise KeyFetchError(f"The JWK Set at {shown} has the kid {excerpt(parsed.kid, 40)} twice.", url=url)
        keys[parsed.kid] = parsed
    if not keys:
        reason = f" ({skipped[0]})" if skipped else ""
        raise KeyFetchError(f"The JWK Set at {shown} has no usable signing key{reason}.", url=url)
    if skipped:
        log.info("key set %s: %d key(s) skipped, first: %s", shown, len(skipped), skipped[0])
    return keys


def _parse_discovery(body: bytes, url: str, issuer: str, allow_insecure: bool) -> str:
    shown = _redacted(url)
    document = _load_json(body, url, "object")
    if not isinstance(document, dict):
        raise KeyFetchError(f"The discovery document at {shown} is not a JSON object.", url=url)
    named = document.get("issuer")
    if named != issuer:
        found = excerpt(named, 100) if isinstance(named, str) else "none"
        raise KeyFetchError(f"The discovery document at {shown} names the issuer \"{found}\", not the configured "
                            f"\"{excerpt(issuer, 100)}\"; they must be identical.", url=url)
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise KeyFetchError(f"The discovery document at {shown} has no \"jwks_uri\".", url=url)
    _parse_target(jwks_uri, allow_insecure)
    return jwks_uri
