"""The ``Url`` parameter: download an image without becoming an SSRF proxy.

``UrlFetcher.fetch(url)`` (async; ``fetch_sync`` for worker threads) returns the image bytes or raises an
``ImageError``:

* ``UrlIllegalError`` - the caller's URL is not a well-formed ``http``/``https`` URL: longer than
  ``max_url_length``, control characters or spaces, another scheme (``ftp:``, ``file:`` ...), user info
  (``user:pass@`` is refused: it would put credentials into request lines and logs, and
  ``good.com@evil.com`` is a classic confusion), port 0, or a host that is neither a DNS name nor an IP
  literal. Legacy numeric hosts (``2130706433``, ``0x7f.1``, ``127.1``) are refused here because resolvers
  silently read them as IPv4.
* ``ImageDownloadError`` - the URL is well-formed but cannot be fetched safely: the host does not resolve, or
  resolves to any address that is not globally routable (loopback, RFC 1918 private, link-local incl.
  169.254.169.254, CGNAT 100.64/10, multicast, reserved, unspecified, documentation and benchmark ranges, IPv6
  ULA/site-local, and IPv6 forms that embed such an IPv4 address: IPv4-mapped, NAT64, 6to4; Teredo is refused
  outright), a redirect goes to such a place or to a malformed URL, more than ``max_redirects`` redirects, a
  non-2xx status, a connection error, a timeout, or the total ``deadline`` is exceeded. Addresses inside
  ``allow_networks`` are always permitted (tests allow ``127.0.0.1/32``).
* ``ImageSizeExceedError`` - the body is larger than ``limits.max_download`` bytes. Tencent answers an
  oversize image with ``FailedOperation.ImageSizeExceed`` whatever its origin, so a too-large download gets
  the same code. A ``Content-Length`` over the cap is refused before reading; otherwise the stream is
  aborted as soon as the running total passes the cap. A ``gzip``/``deflate`` body is inflated with the same
  cap on the output (no decompression bomb); any other content coding is a download error.

DNS rebinding. Each hop resolves its host exactly once, validates every address it got, and then connects to
one of those validated IP addresses: the request URL handed to httpx has the IP literal as its host, so httpx
never resolves anything and a second, different DNS answer cannot sneak in between check and connect. The
original name travels where the server needs it: the ``Host`` header is set explicitly, and for ``https`` the
``sni_hostname`` request extension makes httpcore send the name as SNI and verify the certificate against the
name (not the IP). Every hop uses a fresh client, so a TLS connection made for one name is never reused for
another that happens to share an IP. Redirects are followed by hand and each target goes through the same
parse-resolve-validate steps. Proxies from the environment are ignored (``trust_env=False``): a proxy would do
its own resolution and defeat the check.

Messages name the host at most, never the path or query (signed URLs carry secrets there) and never the
resolved internal address.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeAlias

import anyio
import httpx

from denseface.errors import ImageDownloadError, ImageSizeExceedError, UrlIllegalError
from denseface.rpc.image_input import DEFAULT_LIMITS, ImageLimits

logger = logging.getLogger(__name__)

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``async (host, port) -> [ip strings]``; the default calls ``getaddrinfo``. Injectable for tests.
Resolver: TypeAlias = Callable[[str, int], Awaitable[Sequence[str]]]

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_MAX_ADDRESSES_TRIED = 4
_CHUNK = 64 * 1024

_HOST_LABEL = re.compile(r"\A(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")
_NUMERIC_LABEL = re.compile(r"\A(0x[0-9a-fA-F]*|[0-9]+)\Z")
_FORBIDDEN_URL_CHARS = re.compile(r"[\x00-\x20\x7f]")

# Belt and braces next to ``ipaddress``'s flags, whose exact coverage differs between Python versions.
_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/127",
        "100::/64",
        "64:ff9b:1::/48",
        "2001::/32",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def parse_image_url(url: str, max_length: int = 2048) -> httpx.URL:
    """Parse and check the syntax of an image URL; raise ``UrlIllegalError`` with the reason."""
    if not url or not url.strip():
        raise UrlIllegalError("the Url parameter is empty")
    if len(url) > max_length:
        raise UrlIllegalError(f"the Url is {len(url)} characters long; the limit is {max_length}")
    if _FORBIDDEN_URL_CHARS.search(url):
        raise UrlIllegalError("the Url contains spaces or control characters; percent-encode them")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise UrlIllegalError(f"the Url is not a valid URL ({exc})") from exc
    if parsed.scheme not in ("http", "https"):
        raise UrlIllegalError(f"the Url scheme must be http or https, not {parsed.scheme or 'none'!r}")
    if parsed.userinfo:
        raise UrlIllegalError("the Url must not contain user name or password (user:pass@host)")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise UrlIllegalError("the Url port must be between 1 and 65535")
    host = _host_of(parsed)
    if not host:
        raise UrlIllegalError("the Url has no host")
    if _ip_literal(host) is None and not _is_dns_name(host):
        raise UrlIllegalError(f"the Url host {host!r} is neither a DNS name nor an IP address")
    return parsed.copy_with(fragment=None)


def forbidden_reason(address: IPAddress, allow_networks: Sequence[IPNetwork] = ()) -> str | None:
    """Why ``address`` must not be fetched from, or ``None`` if it may be.

    Addresses inside ``allow_networks`` are always allowed; an IPv4-mapped IPv6 address is also matched by its
    IPv4 form.
    """
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    for candidate in candidates:
        if any(candidate.version == net.version and candidate in net for net in allow_networks):
            return None
    return _classify(candidates[-1])


def _classify(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "scoped IPv6"
        embedded = address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = _classify(embedded)
            return f"{inner} (embedded in IPv6)" if inner else None
        if address.teredo is not None:
            return "Teredo"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    )
    for reason, hit in checks:
        if hit:
            return reason
    blocked: tuple[IPNetwork, ...] = _BLOCKED_V4 if address.version == 4 else _BLOCKED_V6
    if any(address in net for net in blocked) or not address.is_global:
        return "non-public"
    return None


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class UrlFetcher:
    """Downloads images from caller-supplied URLs under the rules in the module docstring.

    Holds configuration only (no open connections), so one instance can be shared by every request and every
    thread. ``resolver`` replaces DNS (tests); ``transport`` replaces httpx's network transport (tests).
    """

    def __init__(
        self,
        *,
        limits: ImageLimits = DEFAULT_LIMITS,
        allow_networks: Sequence[IPNetwork] = (),
        connect_timeout: float = 3.0,
        deadline: float = 10.0,
        max_redirects: int = 3,
        max_url_length: int = 2048,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = "denseface-image-fetcher",
    ) -> None:
        if connect_timeout <= 0 or deadline <= 0:
            raise ValueError("connect_timeout and deadline must be positive")
        if max_redirects < 0 or max_url_length <= 0:
            raise ValueError("max_redirects must be >= 0 and max_url_length > 0")
        self.limits = limits
        self.allow_networks: tuple[IPNetwork, ...] = tuple(allow_networks)
        self.connect_timeout = connect_timeout
        self.deadline = deadline
        self.max_redirects = max_redirects
        self.max_url_length = max_url_length
        self._resolve: Resolver = resolver or _getaddrinfo
        self._transport = transport
        # One verifying TLS context for all hops: building one per client costs tens of milliseconds.
        self._ssl_context = httpx.create_ssl_context(trust_env=False)
        self._user_agent = user_agent

    async def fetch(self, url: str) -> bytes:
        """Download ``url`` and return the body; raise ``UrlIllegalError``, ``ImageDownloadError`` or
        ``ImageSizeExceedError``."""
        target = parse_image_url(url, self.max_url_length)
        try:
            with anyio.fail_after(self.deadline):
                return await self._follow(target)
        except TimeoutError as exc:
            raise ImageDownloadError(
                f"downloading the image from {_host_of(target)} took longer than {self.deadline:g} s"
            ) from exc

    def fetch_sync(self, url: str) -> bytes:
        """Blocking ``fetch`` for a thread without a running event loop (e.g. a Starlette worker thread)."""
        return anyio.run(self.fetch, url)

    async def _follow(self, target: httpx.URL) -> bytes:
        current = target
        for hop in range(self.max_redirects + 1):
            addresses = await self._checked_addresses(current)
            location = await self._get(current, addresses)
            if isinstance(location, bytes):
                return location
            current = self._redirect_target(current, location)
            logger.debug("redirect %d: %s -> %s", hop + 1, _host_of(target), _host_of(current))
        raise ImageDownloadError(
            f"downloading the image from {_host_of(target)} needed more than {self.max_redirects} redirects"
        )

    def _redirect_target(self, current: httpx.URL, location: str) -> httpx.URL:
        """Resolve a ``Location`` against the URL that sent it and check its syntax like the caller's URL."""
        host = _host_of(current)
        try:
            return parse_image_url(str(current.join(location)), self.max_url_length)
        except UrlIllegalError as exc:
            reason = exc.message
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            reason = f"the Location is not a valid URL ({type(exc).__name__})"
        raise ImageDownloadError(f"the image server {host} redirected to a URL that is not allowed: {reason}")

    async def _checked_addresses(self, url: httpx.URL) -> list[str]:
        """Resolve once and validate every address; return them (deduplicated, in resolver order)."""
        host = _host_of(url)
        literal = _ip_literal(host)
        if literal is not None:
            raw: Sequence[str] = [str(literal)]
        else:
            try:
                raw = await self._resolve(host, _port_of(url))
            except (OSError, UnicodeError) as exc:
                raise ImageDownloadError(f"the image host {host} could not be resolved") from exc
        addresses: list[str] = []
        for text in raw:
            try:
                address = ipaddress.ip_address(text)
            except ValueError as exc:
                raise ImageDownloadError(f"the image host {host} resolved to an invalid address") from exc
            reason = forbidden_reason(address, self.allow_networks)
            if reason is not None:
                logger.info("refused image download from %s: %s address", host, reason)
                raise ImageDownloadError(
                    f"the image host {host} resolves to a {reason} address; downloads from it are refused"
                )
            if str(address) not in addresses:
                addresses.append(str(address))
        if not addresses:
            raise ImageDownloadError(f"the image host {host} could not be resolved")
        return addresses

    async def _get(self, url: httpx.URL, addresses: Sequence[str]) -> bytes | str:
        """GET ``url`` via the first reachable validated address; return the body or a redirect Location."""
        host = _host_of(url)
        last_error: Exception | None = None
        for address in addresses[:_MAX_ADDRESSES_TRIED]:
            try:
                return await self._get_from(url, address)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                logger.debug("connecting to an address of %s failed: %s", host, exc)
                last_error = exc
        raise ImageDownloadError(f"could not connect to the image host {host}") from last_error

    async def _get_from(self, url: httpx.URL, address: str) -> bytes | str:
        host = _host_of(url)
        request_url = url.copy_with(host=address)
        headers = {
            "Host": url.netloc.decode("ascii"),
            "User-Agent": self._user_agent,
            "Accept": "image/*",
            "Accept-Encoding": "identity",
        }
        extensions = {"sni_hostname": host} if url.scheme == "https" and _ip_literal(host) is None else {}
        timeout = httpx.Timeout(self.deadline, connect=self.connect_timeout)
        try:
            async with (
                httpx.AsyncClient(
                    verify=self._ssl_context,
                    trust_env=False,
                    follow_redirects=False,
                    timeout=timeout,
                    transport=self._transport,
                ) as client,
                client.stream("GET", request_url, headers=headers, extensions=extensions) as response,
            ):
                status = response.status_code
                if status in _REDIRECT_STATUSES:
                    location = response.headers.get("location")
                    if not location:
                        raise ImageDownloadError(
                            f"the image server {host} sent HTTP {status} without Location"
                        )
                    return str(location)
                if not 200 <= status < 300:
                    raise ImageDownloadError(f"the image server {host} answered HTTP {status}")
                return await self._read_body(response, host)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise
        except httpx.TimeoutException as exc:
            raise ImageDownloadError(f"the image server {host} timed out") from exc
        except (httpx.HTTPError, httpx.StreamError, OSError) as exc:
            raise ImageDownloadError(
                f"downloading the image from {host} failed ({type(exc).__name__})"
            ) from exc

    async def _read_body(self, response: httpx.Response, host: str) -> bytes:
        cap = self.limits.max_download
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise ImageSizeExceedError(
                f"the image at {host} is {int(declared)} bytes; the limit is {cap} bytes"
            )
        body = bytearray()
        async for chunk in response.aiter_raw(_CHUNK):
            body.extend(chunk)
            if len(body) > cap:
                raise ImageSizeExceedError(f"the image at {host} is larger than the {cap}-byte limit")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        return _decode_content(bytes(body), encoding, cap, host)


def _decode_content(raw: bytes, encoding: str, cap: int, host: str) -> bytes:
    """Undo a gzip/deflate content coding without ever producing more than ``cap + 1`` bytes."""
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise ImageDownloadError(f"the image server {host} used an unsupported content coding {encoding!r}")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # accepts gzip and zlib headers
    try:
        data = inflater.decompress(raw, cap + 1)
    except zlib.error as exc:
        raise ImageDownloadError(f"the image from {host} has a corrupt {encoding} body") from exc
    if len(data) > cap or inflater.unconsumed_tail:
        raise ImageSizeExceedError(f"the image at {host} inflates to more than the {cap}-byte limit")
    return data


def _host_of(url: httpx.URL) -> str:
    """The host as ASCII (IDNA-encoded for international names), without IPv6 brackets."""
    raw = url.raw_host.decode("ascii", errors="replace")
    return raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw


def _port_of(url: httpx.URL) -> int:
    if url.port is not None:
        return url.port
    return 443 if url.scheme == "https" else 80


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_dns_name(host: str) -> bool:
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if not all(_HOST_LABEL.match(label) for label in labels):
        return False
    # A numeric final label is how resolvers accept "127.1" or "2130706433" as IPv4; no TLD is numeric.
    return not _NUMERIC_LABEL.match(labels[-1])


def parse_networks(specs: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Parse allow-list entries such as ``"127.0.0.1/32"`` or ``"10.1.0.0/16"`` (settings helper)."""
    return tuple(ipaddress.ip_network(spec, strict=True) for spec in specs)


__all__ = [
    "IPNetwork",
    "Resolver",
    "UrlFetcher",
    "forbidden_reason",
    "parse_image_url",
    "parse_networks",
]
