"""Calls to partners' servers: OCPI parties (ocpi.client) and webhook receivers (api.webhooks).

One policy for every request we make to an address someone else gave us:

- A total deadline per call (OUTBOUND_HTTP_DEADLINE_SECONDS): name lookup, connection, request
  and the whole answer. httpx's timeouts bound each read, so a server sending one byte every
  few seconds never trips them, and httpx has no overall timeout of its own; its async client's
  requests can be cancelled, so each call runs on a short-lived event loop under
  `asyncio.timeout`, which cancels it at the deadline wherever it is. Answers are capped in size.
- Public addresses only: loopback, private, link-local and other non-global addresses are
  refused unless OUTBOUND_ALLOW_PRIVATE_URLS is on (development and tests, where partners run on
  this machine). Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import httpx
from django.conf import settings

TIMEOUT = httpx.Timeout(10.0, connect=3.0)  # each step; the deadline bounds the whole call
MAX_REPLY_BYTES = 1024 * 1024  # the answers we read are a few KiB


class OutboundError(Exception):
    """The server could not be reached, did not answer in time, or answered too much."""


class RefusedURL(OutboundError):
    """The URL points at an address we do not call."""


def deadline_seconds() -> float:
    return float(settings.OUTBOUND_HTTP_DEADLINE_SECONDS)


def public_address(address: str) -> bool:
    """Whether an IP address is one the public internet routes to (not loopback, private,
    link-local, shared, reserved or multicast)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id is not part of it
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def _check_target(url: httpx.URL) -> None:
    if url.scheme not in ("http", "https") or not url.host:
        raise RefusedURL(f"{url}: not an http(s) URL")
    if settings.OUTBOUND_ALLOW_PRIVATE_URLS:
        return
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            url.host, port, type=socket.SOCK_STREAM
        )
    except OSError as error:
        raise OutboundError(f"{url}: name lookup failed: {error}") from error
    refused = sorted({info[4][0] for info in found if not public_address(info[4][0])})
    if refused:
        raise RefusedURL(f"{url}: {url.host} is a non-public address ({', '.join(refused)})")


async def _request(method: str, url: str, kwargs: dict[str, Any]) -> tuple[int, bytes]:
    target = httpx.URL(url)
    await _check_target(target)
    async with (
        httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http,
        http.stream(method, target, **kwargs) as response,
    ):
        content = bytearray()
        async for chunk in response.aiter_bytes():
            content += chunk
            if len(content) > MAX_REPLY_BYTES:
                raise OutboundError(f"{method} {url}: answer larger than {MAX_REPLY_BYTES} bytes")
        return response.status_code, bytes(content)


async def _within_deadline(method: str, url: str, kwargs: dict[str, Any]) -> tuple[int, bytes]:
    seconds = deadline_seconds()
    try:
        async with asyncio.timeout(seconds):
            return await _request(method, url, kwargs)
    except TimeoutError as error:
        raise OutboundError(f"{method} {url}: no complete answer within {seconds} s") from error


def send(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    json: Any = None,
    content: bytes | None = None,
) -> tuple[int, bytes]:
    """One request within the deadline: its HTTP status and body. Raises RefusedURL for a URL
    we do not call, OutboundError when it fails or runs out of time."""
    kwargs: dict[str, Any] = {"headers": headers}
    if content is not None:
        kwargs["content"] = content
    else:
        kwargs["json"] = json
    try:
        return asyncio.run(_within_deadline(method, url, kwargs))
    except httpx.HTTPError as error:
        raise OutboundError(f"{method} {url}: {type(error).__name__}: {error}") from error
