"""Outbound OCPI calls to a party (httpx): version discovery, credentials, pushes, command results.

Every call carries our token for them (Base64 unless the party is legacy), fresh X-Request-ID and
X-Correlation-ID, and on functional modules the routing headers (FROM = us, TO = them).

Two limits protect us from the party at the other end (issue 18):

- A total deadline per call (OCPI_HTTP_DEADLINE_SECONDS), name lookup, connect, request, the
  answer's head and body included. httpx's timeouts bound each read, so a party sending one byte
  every few seconds never trips them, and httpx has no overall timeout of its own. Its async
  client's requests can be cancelled, so each call runs on a short-lived event loop under
  `asyncio.timeout`, which cancels it at the deadline wherever it is. The answer is also capped
  in size (MAX_REPLY_BYTES).
- The URLs a party gives us (versions, endpoints, response_url) must reach a public address:
  loopback, private, link-local and other non-global addresses are refused unless
  OCPI_ALLOW_PRIVATE_URLS is on (development and tests). Any failure reads the same to the
  party, so our answers never tell which hosts or ports answer inside our network.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json as jsonlib
import logging
import socket
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0, connect=3.0)  # each step; the deadline bounds the whole call
MAX_REPLY_BYTES = 1024 * 1024  # an OCPI answer we read is a few KiB (a version's endpoints)
UNUSABLE = "unreachable, refused, or not answering in time"  # what a party is told, always


class ClientError(Exception):
    """The party could not be reached, or answered with an HTTP error or a non-1xxx status."""

    def __init__(self, message: str, *, http_status: int | None = None, ocpi_status=None):
        super().__init__(message)
        self.http_status = http_status
        self.ocpi_status = ocpi_status


class RefusedURL(ClientError):
    """The URL points at an address we do not call (OCPI_ALLOW_PRIVATE_URLS is off)."""


@dataclass(frozen=True)
class Reply:
    http_status: int
    status_code: int | None
    data: Any


def authorization(token: str, *, raw: bool = False) -> str:
    return "Token " + (token if raw else base64.b64encode(token.encode()).decode())


def deadline_seconds() -> float:
    return float(getattr(settings, "OCPI_HTTP_DEADLINE_SECONDS", 20))


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
    if getattr(settings, "OCPI_ALLOW_PRIVATE_URLS", False):
        return
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            url.host, port, type=socket.SOCK_STREAM
        )
    except OSError as error:
        raise ClientError(f"{url}: name lookup failed: {error}") from error
    refused = sorted({info[4][0] for info in found if not public_address(info[4][0])})
    if refused:
        raise RefusedURL(f"{url}: {url.host} is a non-public address ({', '.join(refused)})")


async def _request(method: str, url: str, headers: dict[str, str], body: Any) -> tuple[int, bytes]:
    target = httpx.URL(url)
    await _check_target(target)
    async with (
        httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http,
        http.stream(method, target, headers=headers, json=body) as response,
    ):
        content = bytearray()
        async for chunk in response.aiter_bytes():
            content += chunk
            if len(content) > MAX_REPLY_BYTES:
                raise ClientError(f"{method} {url}: answer larger than {MAX_REPLY_BYTES} bytes")
        return response.status_code, bytes(content)


async def _within_deadline(method: str, url: str, headers: dict[str, str], body: Any):
    seconds = deadline_seconds()
    try:
        async with asyncio.timeout(seconds):
            return await _request(method, url, headers, body)
    except TimeoutError as error:
        raise ClientError(f"{method} {url}: no complete answer within {seconds} s") from error


def call(
    method: str,
    url: str,
    *,
    token: str,
    raw_token: bool = False,
    json: Any = None,
    to: tuple[str, str] | None = None,
    correlation_id: str | None = None,
) -> Reply:
    """One OCPI request within the deadline; raises ClientError unless HTTP 2xx with a 1xxx
    status (or no body), RefusedURL for a URL we do not call."""
    headers = {
        "Authorization": authorization(token, raw=raw_token),
        "X-Request-ID": str(uuid.uuid4()),
        "X-Correlation-ID": correlation_id or str(uuid.uuid4()),
    }
    if to is not None:
        headers.update({
            "OCPI-from-country-code": settings.OCPI_COUNTRY_CODE,
            "OCPI-from-party-id": settings.OCPI_PARTY_ID,
            "OCPI-to-country-code": to[0],
            "OCPI-to-party-id": to[1],
        })  # fmt: skip
    try:
        http_status, content = asyncio.run(_within_deadline(method, url, headers, json))
    except httpx.HTTPError as error:
        raise ClientError(f"{method} {url}: {type(error).__name__}: {error}") from error
    body: Any = None
    if content:
        try:
            body = jsonlib.loads(content)
        except (ValueError, RecursionError):
            body = None
    status_code = body.get("status_code") if isinstance(body, dict) else None
    if http_status >= 300:
        raise ClientError(
            f"{method} {url}: HTTP {http_status}", http_status=http_status, ocpi_status=status_code
        )
    if isinstance(status_code, int) and not 1000 <= status_code < 2000:
        message = body.get("status_message") or ""
        raise ClientError(
            f"{method} {url}: OCPI {status_code} {message}".strip(),
            http_status=http_status,
            ocpi_status=status_code,
        )
    data = body.get("data") if isinstance(body, dict) else None
    return Reply(http_status, status_code, data)
