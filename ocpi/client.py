"""Outbound OCPI calls to a party: version discovery, credentials, pushes, command results.

Every call carries our token for them (Base64 unless the party is legacy), fresh X-Request-ID and
X-Correlation-ID, and on functional modules the routing headers (FROM = us, TO = them).

Every call goes through partners.outbound: a total deadline, a cap on the answer's size, and
public addresses only (unless OUTBOUND_ALLOW_PRIVATE_URLS). Any failure reads the same to the
party (UNUSABLE), so our answers never tell which hosts or ports answer inside our network.
"""

from __future__ import annotations

import base64
import json as jsonlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from partners import outbound

logger = logging.getLogger(__name__)

UNUSABLE = "unreachable, refused, or not answering in time"  # what a party is told, always


class ClientError(Exception):
    """The party could not be reached, or answered with an HTTP error or a non-1xxx status."""

    def __init__(self, message: str, *, http_status: int | None = None, ocpi_status=None):
        super().__init__(message)
        self.http_status = http_status
        self.ocpi_status = ocpi_status


class RefusedURL(ClientError):
    """The URL points at an address we do not call (OUTBOUND_ALLOW_PRIVATE_URLS is off)."""


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
        http_status, content = outbound.send(method, url, headers=headers, json=json)
    except outbound.RefusedURL as error:
        raise RefusedURL(str(error)) from error
    except outbound.OutboundError as error:
        raise ClientError(str(error)) from error
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
