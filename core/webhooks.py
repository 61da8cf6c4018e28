"""Where we may send a partner's callbacks: never into our own network, outside the dev profile (SSRF)."""

import ipaddress
import socket
from urllib.parse import urlsplit


class WebhookTargetError(ValueError):
    """A webhook URL we refuse to call."""


def check_webhook_target(url: str, *, allow_private: bool) -> None:
    """Refuse URLs that are malformed, not HTTP(S), or that resolve to private, loopback or link-local addresses.

    Called when a URL is registered and again before each send, since what a name resolves to can change.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookTargetError("must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise WebhookTargetError("must not carry credentials")
    if allow_private:
        return
    if parts.scheme != "https":
        raise WebhookTargetError("must use https")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise WebhookTargetError(f"host {parts.hostname} does not resolve") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise WebhookTargetError(f"host {parts.hostname} resolves to a non-public address")
