"""Where we may send a partner's callbacks: never into our own network, outside the dev profile (SSRF).

A name is resolved once, every address it resolves to is vetted, and the callback is sent to a vetted address
with the partner's host name in `Host` and in TLS (SNI and certificate check): a second DNS answer is never used.
"""

import asyncio
import ipaddress
import socket
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

# A partner's answer matters only by its status and headers; its body is read this far, then dropped.
MAX_RESPONSE_BYTES = 64 * 1024
# The whole exchange (connect, TLS, send, answer), however slowly a partner's endpoint trickles bytes.
SEND_TIMEOUT_SECONDS = 10.0
# A connection to a partner's endpoint idle this long is closed rather than used again.
KEEPALIVE_SECONDS = 30.0

# IPv6 prefixes that carry an IPv4 address in their last 32 bits: IPv4-compatible (::/96) and NAT64 (RFC 6052).
_IPV4_IN_LOW_BITS = (ipaddress.IPv6Network("::/96"), ipaddress.IPv6Network("64:ff9b::/96"))
# Local-use NAT64 (RFC 8215): translated inside the operator's own network, so never public.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


class WebhookTargetError(ValueError):
    """A webhook URL we refuse to call."""


@dataclass(frozen=True)
class WebhookTarget:
    """A webhook URL and the vetted address to send to; no address in the dev profile (the URL as written)."""

    url: str
    address: str | None = None


@dataclass(frozen=True)
class WebhookAnswer:
    """What a partner's endpoint answered: its status and `Retry-After`, if any."""

    status_code: int
    retry_after: str | None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True if the address, and every IPv4 address it carries (IPv4-mapped, IPv4-compatible, NAT64, 6to4,
    Teredo), is globally reachable unicast."""
    carried: list[ipaddress.IPv4Address] = []
    if isinstance(address, ipaddress.IPv6Address):
        if address in _LOCAL_NAT64:
            return False
        if address.ipv4_mapped:
            carried.append(address.ipv4_mapped)
        if address.sixtofour:
            carried.append(address.sixtofour)
        if address.teredo:
            carried.extend(address.teredo)
        if any(address in network for network in _IPV4_IN_LOW_BITS):
            carried.append(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
    return all(a.is_global and not a.is_multicast for a in (address, *carried))


def check_webhook_target(url: str, *, allow_private: bool) -> WebhookTarget:
    """Refuse URLs that are malformed, not HTTP(S), or whose host resolves to any address that is not public.

    Called when a URL is registered and again before each send, since what a name resolves to can change;
    a send goes to the address vetted here.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookTargetError("must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise WebhookTargetError("must not carry credentials")
    if allow_private:
        return WebhookTarget(url)
    if parts.scheme != "https":
        raise WebhookTargetError("must use https")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise WebhookTargetError(f"host {parts.hostname} does not resolve") from exc
    addresses = [ipaddress.ip_address(info[4][0].partition("%")[0]) for info in infos]
    if not addresses or not all(is_public(address) for address in addresses):
        raise WebhookTargetError(f"host {parts.hostname} resolves to a non-public address")
    return WebhookTarget(url, str(addresses[0]))


class WebhookClients:
    """HTTP clients for partners' endpoints that keep their connections alive, one client per host name (and
    port and scheme) and vetted address: a connection made, and its certificate checked, for one name is used
    again only for that name at that address, never for another partner's name sharing the address, nor once
    the name resolves elsewhere. The least recently used client beyond `size` is closed."""

    def __init__(self, size: int = 64, keepalive_seconds: float = KEEPALIVE_SECONDS):
        self.size, self.keepalive_seconds = size, keepalive_seconds
        self._clients: OrderedDict[tuple, httpx.AsyncClient] = OrderedDict()

    async def client_for(self, target: WebhookTarget) -> httpx.AsyncClient:
        url = httpx.URL(target.url)
        key = (url.scheme, url.host, url.port, target.address)
        client = self._clients.pop(key, None) or httpx.AsyncClient(
            timeout=SEND_TIMEOUT_SECONDS, follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=8, keepalive_expiry=self.keepalive_seconds))
        self._clients[key] = client
        while len(self._clients) > self.size:
            _, oldest = self._clients.popitem(last=False)
            await oldest.aclose()
        return client

    async def aclose(self) -> None:
        while self._clients:
            await self._clients.popitem()[1].aclose()


async def post_webhook(http: httpx.AsyncClient, target: WebhookTarget, body: bytes, headers: dict[str, str],
                       *, timeout: float = SEND_TIMEOUT_SECONDS) -> WebhookAnswer:
    """POST to the target's vetted address, reading at most MAX_RESPONSE_BYTES of the answer, within `timeout`.

    A connection `http` keeps alive must only ever carry callbacks to the same name at the same address: take
    `http` from `WebhookClients.client_for(target)`. An answer cut off, or a timeout, closes the connection.
    """
    url, extensions = httpx.URL(target.url), {}
    if target.address is not None:
        headers = {**headers, "host": url.netloc.decode("ascii")}
        extensions["sni_hostname"] = url.raw_host.decode("ascii")
        url = url.copy_with(host=target.address)
    async with asyncio.timeout(timeout):
        async with http.stream("POST", url, content=body, headers=headers, extensions=extensions) as response:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break
    return WebhookAnswer(response.status_code, response.headers.get("retry-after"))
