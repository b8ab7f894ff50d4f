"""A real HTTP server playing an eMSP (pytest-httpserver): versions, version details, a
credentials endpoint, and a Booking Receiver that records what we push."""

import base64
import json
import re

from werkzeug import Response


def envelope(data=None, status_code=1000):
    body = {"status_code": status_code, "timestamp": "2026-01-01T00:00:00Z"}
    if data is not None:
        body["data"] = data
    return body


class FakeEmsp:
    def __init__(self, httpserver, *, country_code="DE", party_id="XMS", token_b="emsp-token-b"):
        self.server = httpserver
        self.country_code = country_code
        self.party_id = party_id
        self.token_b = token_b
        self.pushes = []  # (method, path, json) in arrival order
        self.down = False
        base = httpserver.url_for("")
        self.versions_url = base + "ocpi/versions"
        self.details_url = base + "ocpi/2.3.0"
        self.bookings_url = base + "ocpi/emsp/2.3.0/bookings"
        self.credentials_url = base + "ocpi/2.3.0/credentials"
        self.sessions_url = base + "ocpi/emsp/2.3.0/sessions"
        self.cdrs_url = base + "ocpi/emsp/2.3.0/cdrs"
        self.tariffs_url = base + "ocpi/emsp/2.3.0/tariffs"
        self.accepted_tokens = {token_b}

    def authorized(self, request) -> bool:
        header = request.headers.get("Authorization", "")
        try:
            token = base64.b64decode(header.removeprefix("Token ")).decode()
        except ValueError:
            return False
        return token in self.accepted_tokens

    def _guard(self, handler):
        def wrapped(request):
            if not self.authorized(request):
                return Response(json.dumps(envelope(status_code=2000)), 401,
                                content_type="application/json")  # fmt: skip
            return handler(request)

        return wrapped

    def install(self):
        s = self.server
        s.expect_request("/ocpi/versions", method="GET").respond_with_handler(self._guard(
            lambda r: _json(envelope([{"version": "2.2.1", "url": self.details_url + "-old"},
                                      {"version": "2.3.0", "url": self.details_url}]))
        ))  # fmt: skip
        s.expect_request("/ocpi/2.3.0", method="GET").respond_with_handler(self._guard(
            lambda r: _json(envelope({"version": "2.3.0", "endpoints": [
                {"identifier": "credentials", "role": "RECEIVER", "url": self.credentials_url},
                {"identifier": "booking", "role": "RECEIVER", "url": self.bookings_url},
            ]}))
        ))  # fmt: skip
        s.expect_request(re.compile(r"^/ocpi/emsp/2\.3\.0/bookings/.+")).respond_with_handler(
            self._guard(self._record)
        )
        s.expect_request(re.compile(r"^/ocpi/emsp/2\.3\.0/commands/.+")).respond_with_handler(
            self._guard(self._record)
        )
        s.expect_request(
            re.compile(r"^/ocpi/emsp/2\.3\.0/(sessions|cdrs|tariffs)(/.*)?$")
        ).respond_with_handler(self._guard(self._record))
        return self

    def receivers(self, *modules: str) -> list[dict]:
        """Endpoints of a party registered with these Receiver modules (and bookings)."""
        urls = {"sessions": self.sessions_url, "cdrs": self.cdrs_url,
                "tariffs": self.tariffs_url}  # fmt: skip
        return [{"identifier": "Booking", "role": "RECEIVER", "url": self.bookings_url}] + [
            {"identifier": m, "role": "RECEIVER", "url": urls[m]} for m in modules
        ]

    def _record(self, request):
        if self.down:
            return Response("maintenance", 503)
        self.pushes.append((request.method, request.path, request.get_json(silent=True)))
        return _json(envelope())

    def booking_pushes(self):
        return [(p, body) for m, p, body in self.pushes if "/booking_locations/" not in p
                and "/bookings/" in p]  # fmt: skip

    def location_pushes(self):
        return [(p, body) for m, p, body in self.pushes if "/booking_locations/" in p]

    def credentials(self, token=None):
        return {
            "token": token or self.token_b,
            "url": self.versions_url,
            "roles": [{"role": "EMSP", "party_id": self.party_id, "country_code": self.country_code,
                       "business_details": {"name": "Fake eMSP"}}],
        }  # fmt: skip


def _json(body, status=200):
    return Response(json.dumps(body), status, content_type="application/json")
