"""Outbound OCPI calls to a party (httpx): version discovery, credentials, pushes, command results.

Every call carries our token for them (Base64 unless the party is legacy), fresh X-Request-ID and
X-Correlation-ID, and on functional modules the routing headers (FROM = us, TO = them).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings

TIMEOUT = httpx.Timeout(10.0, connect=3.0)  # a dead party must not hold a worker for long


class ClientError(Exception):
    """The party could not be reached, or answered with an HTTP error or a non-1xxx status."""

    def __init__(self, message: str, *, http_status: int | None = None, ocpi_status=None):
        super().__init__(message)
        self.http_status = http_status
        self.ocpi_status = ocpi_status


@dataclass(frozen=True)
class Reply:
    http_status: int
    status_code: int | None
    data: Any


def authorization(token: str, *, raw: bool = False) -> str:
    return "Token " + (token if raw else base64.b64encode(token.encode()).decode())


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
    """One OCPI request; raises ClientError unless HTTP 2xx with a 1xxx status (or no body)."""
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
        response = httpx.request(method, url, headers=headers, json=json, timeout=TIMEOUT)
    except httpx.HTTPError as error:
        raise ClientError(f"{method} {url}: {type(error).__name__}: {error}") from error
    body: Any = None
    if response.content:
        try:
            body = response.json()
        except ValueError:
            body = None
    status_code = body.get("status_code") if isinstance(body, dict) else None
    if response.status_code >= 300:
        raise ClientError(
            f"{method} {url}: HTTP {response.status_code}",
            http_status=response.status_code,
            ocpi_status=status_code,
        )
    if isinstance(status_code, int) and not 1000 <= status_code < 2000:
        message = body.get("status_message") or ""
        raise ClientError(
            f"{method} {url}: OCPI {status_code} {message}".strip(),
            http_status=response.status_code,
            ocpi_status=status_code,
        )
    data = body.get("data") if isinstance(body, dict) else None
    return Reply(response.status_code, status_code, data)
