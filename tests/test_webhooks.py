"""Webhook targets (SSRF): which addresses a callback may reach, and that it reaches the address vetted."""

import asyncio
import ipaddress
import socket

import httpx
import pytest

from core.webhooks import (
    MAX_RESPONSE_BYTES, WebhookClients, WebhookTarget, WebhookTargetError, check_webhook_target, is_public,
    post_webhook,
)

PUBLIC = "93.184.216.34"


def answer(status: int) -> httpx.Response:
    """An answer whose body is still to be read, as a real connection gives it."""
    return httpx.Response(status, stream=httpx.ByteStream(b""))


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
    "::1", "::", "fe80::1", "fc00::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254",  # IPv4-mapped
    "::127.0.0.1", "::10.0.0.1",  # IPv4-compatible
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::808:808",  # NAT64, and local-use NAT64
    "2002:7f00:1::", "2002:a00:1::1",  # 6to4 of 127.0.0.1, 10.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
])
def test_every_form_of_a_non_public_address_is_refused(address):
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_pass(address):
    assert is_public(ipaddress.ip_address(address))


def answers(*addresses: str):
    """A resolver giving one answer per call (the last one again after that), and the names it was asked."""
    asked = []

    def getaddrinfo(host, port, *args, **kwargs):
        asked.append(host)
        address = addresses[min(len(asked), len(addresses)) - 1]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    return getaddrinfo, asked


@pytest.mark.parametrize("address", ["127.0.0.1", "::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1"])
def test_a_name_resolving_to_a_hidden_loopback_is_refused(monkeypatch, address):
    resolver, _ = answers(address)
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with pytest.raises(WebhookTargetError, match="non-public"):
        check_webhook_target("https://partner.example/hooks", allow_private=False)


async def test_a_callback_goes_to_the_address_vetted_never_to_a_second_answer(monkeypatch):
    """DNS rebinding: the name answers a public address when vetted, then loopback."""
    resolver, asked = answers(PUBLIC, "127.0.0.1")
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    sent = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answer(204)

    target = await asyncio.to_thread(check_webhook_target, "https://partner.example:8443/hooks?x=1",
                                     allow_private=False)
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
        answered = await post_webhook(http, target, b"{}", {"content-type": "application/json"})
    assert answered.status_code == 204
    assert asked == ["partner.example"]
    (request,) = sent
    assert request.url.host == PUBLIC and request.url.port == 8443 and request.url.raw_path == b"/hooks?x=1"
    assert request.headers["host"] == "partner.example:8443"
    assert request.extensions["sni_hostname"] == "partner.example"


async def test_the_dev_profile_sends_to_the_url_as_written():
    sent = []
    target = check_webhook_target("http://127.0.0.1:9000/hooks", allow_private=True)
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: sent.append(r) or answer(200))) as h:
        assert (await post_webhook(h, target, b"{}", {})).status_code == 200
    assert str(sent[0].url) == "http://127.0.0.1:9000/hooks" and "sni_hostname" not in sent[0].extensions


async def test_an_endless_answer_is_cut_off_and_a_slow_one_times_out():
    read = 0

    async def endless():
        nonlocal read
        while True:
            read += 1024
            yield b"x" * 1024

    async def trickle():
        yield b"x"
        await asyncio.sleep(60)
        yield b"x"

    bodies = iter([endless(), trickle()])
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=next(bodies)))
    async with httpx.AsyncClient(transport=transport) as http:
        target = check_webhook_target("http://127.0.0.1:9000/hooks", allow_private=True)
        assert (await post_webhook(http, target, b"{}", {})).status_code == 200
        assert read <= MAX_RESPONSE_BYTES + 1024
        with pytest.raises(TimeoutError):
            await post_webhook(http, target, b"{}", {}, timeout=0.2)


async def test_connections_are_kept_per_host_name_and_vetted_address():
    """Callbacks to one name at one address share a kept-alive connection; another name at the same address, or
    the same name vetted at another address, gets its own; a client evicted beyond `size` closes its own."""
    connections, requests, closed = 0, [], []

    async def endpoint(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        number = connections
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode().lower().split("\r\n")
                length = next(int(line.split(":")[1]) for line in head if line.startswith("content-length:"))
                await reader.readexactly(length)
                requests.append((number, next(line for line in head if line.startswith("host:"))))
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except asyncio.IncompleteReadError:
            closed.append(number)
        finally:
            writer.close()

    first = await asyncio.start_server(endpoint, "127.0.0.1", 0)
    port = first.sockets[0].getsockname()[1]
    second = await asyncio.start_server(endpoint, "127.0.0.2", port)
    clients = WebhookClients(size=2)
    named = WebhookTarget(f"http://partner.example:{port}/hooks", address="127.0.0.1")
    other_name = WebhookTarget(f"http://other.example:{port}/hooks", address="127.0.0.1")
    elsewhere = WebhookTarget(f"http://partner.example:{port}/hooks", address="127.0.0.2")
    try:
        for target in (named, named, other_name, named, elsewhere):
            assert (await post_webhook(await clients.client_for(target), target, b"{}", {})).status_code == 204
        assert requests == [(1, f"host: partner.example:{port}"), (1, f"host: partner.example:{port}"),
                            (2, f"host: other.example:{port}"), (1, f"host: partner.example:{port}"),
                            (3, f"host: partner.example:{port}")]
        # Three clients for a size of two: the least recently used one (other.example's) was closed.
        for _ in range(50):
            if closed:
                break
            await asyncio.sleep(0.02)
        assert closed == [2]
    finally:
        await clients.aclose()
        for server in (first, second):
            server.close()
            await server.wait_closed()
