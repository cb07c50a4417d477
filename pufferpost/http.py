"""Every outbound HTTP request the platform makes goes through here (webhook deliveries, MTA-STS policies).

Customers choose the URLs, so a request must not become a way into the private network (SSRF):
the host is resolved once, through `pufferpost.dns` (so PUFFERPOST_DNS_NAMESERVERS is honoured),
each address is vetted, and the connection goes to the vetted address itself, never to the name
again, so a DNS answer that changes between the check and the connect (rebinding) cannot slip a
private address in. The Host header and the TLS SNI/certificate check still use the name.
Redirects are never followed: a 3xx is returned as it is, and the caller treats it as a failure.
"""

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from pufferpost import dns
from pufferpost.tls import client_context

# Ranges the standard library calls global that must never be reached from the platform:
# IPv4-compatible addresses (deprecated, `::127.0.0.1` is loopback to many stacks), SIIT
# translated addresses (`::ffff:0:a.b.c.d`) and local-use NAT64 (RFC 8215), whose translator
# sits inside the operator's network whatever IPv4 address it embeds.
_ALWAYS_BLOCKED = tuple(ipaddress.ip_network(n) for n in ("::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48"))
# Well-known NAT64 (RFC 6052): allowed only when the IPv4 address it embeds is.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundError(Exception):
    """A request that did not produce an HTTP response. `permanent` ones are not worth retrying."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class BlockedAddress(OutboundError):
    """The destination is (or resolves only to) an address outbound requests may not reach."""

    def __init__(self, message: str):
        super().__init__(message, permanent=True)


@dataclass
class Response:
    status: int
    reason: str
    body: bytes
    headers: dict
    # The body went on past `max_body` (what is in `body` is its first `max_body` bytes).
    truncated: bool = False


def address_allowed(address: str) -> bool:
    """The platform's one outbound address policy (webhook deliveries, MX hosts).

    False for loopback, private (RFC 1918, IPv6 ULA), link-local, CGNAT, multicast, unspecified,
    reserved and documentation addresses, IPv4-compatible (`::/96`), SIIT and local-use NAT64
    addresses, and IPv6 forms that embed a refused IPv4 address (mapped, 6to4, Teredo,
    well-known NAT64). Anything that is not an IP address is refused too."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in _ALWAYS_BLOCKED):
            return False
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not address_allowed(str(embedded)):
            return False
    return ip.is_global and not ip.is_multicast


def literal_address(host: str) -> str | None:
    """The host as an IP address when it is one (`127.0.0.1`, `::1`), else None."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _addresses(host: str, *, allow_private: bool) -> list[str]:
    literal = literal_address(host)
    if literal is not None:
        candidates = [literal]
    else:
        answer = dns.addresses(host)
        if answer.outcome != dns.Outcome.FOUND:
            raise OutboundError(answer.error or f"could not resolve {host}")
        candidates = answer.records
    allowed = [a for a in candidates if allow_private or address_allowed(a)]
    if not allowed:
        raise BlockedAddress(f"{host} resolves only to private or reserved addresses ({', '.join(candidates)})")
    return allowed


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a vetted IP address, with SNI and certificate verification for the host name."""

    def __init__(self, address, port, *, server_hostname, timeout, context):
        super().__init__(address, port, timeout=timeout, context=context)
        self._server_hostname = server_hostname

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_hostname)


# What may stay as it is in a request target (RFC 3986 pchar, '/', '?' and existing escapes);
# everything else (non-ASCII, spaces, control characters) is percent-encoded as UTF-8.
_TARGET_SAFE = "/?:@!$&'()*+,;=-._~%"


def request_parts(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, ASCII host, port, request target, Host header) of an http(s) URL, with a
    non-ASCII path or query percent-encoded and an IDN host in its A-label form. Raises a
    permanent OutboundError for a URL no request can be made to; webhook creation runs the same
    check, so a stored URL cannot fail here."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise OutboundError(f"not a valid URL: {url}", permanent=True) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundError(f"not an http(s) URL: {url}", permanent=True)
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise OutboundError(f"not a valid host name: {parts.hostname}", permanent=True) from None
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    host_header = f"[{host}]" if ":" in host else host
    if port:
        host_header += f":{port}"
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), target, host_header


def post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    allow_private: bool = False,
    max_body: int = 1024,
) -> Response:
    """POST `body` to `url` once and return the response (any status, 3xx included, body cut to
    `max_body` bytes). Raises BlockedAddress for a forbidden destination and OutboundError for a
    connection failure or timeout."""
    return _request(
        "POST", url, body=body, headers=headers, timeout=timeout, allow_private=allow_private, max_body=max_body
    )


def get(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    timeout: float,
    allow_private: bool = False,
    max_body: int = 64 * 1024,
) -> Response:
    """GET `url` once, under the same address policy as `post`, redirects not followed; the body
    is read up to `max_body` bytes (`truncated` says there was more) and the whole exchange ends
    within `timeout` seconds."""
    return _request(
        "GET", url, body=None, headers=headers or {}, timeout=timeout, allow_private=allow_private, max_body=max_body
    )


def _request(method, url, *, body, headers, timeout, allow_private, max_body) -> Response:
    scheme, host, port, path, host_header = request_parts(url)
    request_headers = {**headers, "Host": host_header, "Connection": "close"}

    last_error: OutboundError | None = None
    for address in _addresses(host, allow_private=allow_private):
        if scheme == "https":
            conn = _PinnedHTTPSConnection(
                address, port, server_hostname=host, timeout=timeout, context=client_context()
            )
        else:
            conn = http.client.HTTPConnection(address, port, timeout=timeout)
        try:
            try:
                conn.connect()
            except (OSError, ssl.SSLError) as exc:
                # Another address of the same name may answer; nothing was sent yet.
                last_error = OutboundError(f"could not connect to {host} ({address}): {_describe(exc)}")
                continue
            return _exchange(conn, method, path, body, request_headers, timeout, max_body, host)
        finally:
            conn.close()
    raise last_error or OutboundError(f"could not connect to {host}")


def _exchange(conn, method, path, body, headers, timeout, max_body, host) -> Response:
    deadline = time.monotonic() + timeout
    # The socket timeout bounds each read; this bounds the whole exchange, so a receiver that
    # trickles its status line and headers a byte at a time cannot hold a worker indefinitely.
    cut = threading.Event()
    watchdog = threading.Timer(timeout, _cut, args=(conn, cut))
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        chunk = b""
        # Read at most max_body bytes (and one more, to tell a body that goes on), and never past
        # the overall deadline (a trickling receiver).
        while len(chunk) <= max_body and time.monotonic() < deadline:
            piece = response.read1(max_body + 1 - len(chunk))
            if not piece:
                break
            chunk += piece
        if cut.is_set():
            # What was read after the cut is a truncated answer, not the receiver's response.
            raise OutboundError(f"request to {host} failed: timed out")
        return Response(
            status=response.status,
            reason=response.reason or "",
            body=chunk[:max_body],
            headers={k.lower(): v for k, v in response.getheaders()},
            truncated=len(chunk) > max_body,
        )
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        if cut.is_set():
            raise OutboundError(f"request to {host} failed: timed out")
        raise OutboundError(f"request to {host} failed: {_describe(exc)}")
    finally:
        watchdog.cancel()


def _cut(conn, cut: threading.Event) -> None:
    cut.set()
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or exc.__class__.__name__
