"""The OpenAPI schema of our OCPI endpoints (drf-spectacular), and a bounded schemathesis run
against it through Django's test client: valid and invalid generated requests, never a 5xx."""

import json
from collections import Counter
from urllib.parse import urlencode

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import DataGenerationMethod

pytestmark = pytest.mark.django_db


MAX_EXAMPLES = 8  # per operation and generation method: keeps the suite fast


def ocpi_schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_schema_is_served_and_lists_every_module(client):
    response = client.get("/ocpi/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = ocpi_schema()["paths"]
    for path in ("/ocpi/versions", "/ocpi/2.3.0/credentials", "/ocpi/cpo/2.3.0/locations",
                 "/ocpi/cpo/2.3.0/tokens/{country_code}/{party_id}/{token_uid}",
                 "/ocpi/cpo/2.3.0/commands/{command}", "/ocpi/cpo/2.3.0/bookings",
                 "/ocpi/cpo/2.3.0/bookings/booking_locations", "/ocpi/cpo/2.3.0/sessions",
                 "/ocpi/cpo/2.3.0/tariffs", "/ocpi/cpo/2.3.0/cdrs"):  # fmt: skip
        assert path in paths
    assert "post" in paths["/ocpi/cpo/2.3.0/bookings"]


def _operations():
    schema = schemathesis.from_dict(
        ocpi_schema(), data_generation_methods=DataGenerationMethod.all()
    )
    for result in schema.get_all_operations():
        operation = result.ok()
        # Credentials writes call out to the URL in the body and unregister the caller.
        if operation.path == "/ocpi/2.3.0/credentials" and operation.method.upper() != "GET":
            continue
        yield operation


def test_schema_fuzzing_finds_no_server_errors(client, emsp, site):
    failures = []
    seen = Counter()
    for operation in _operations():

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        def check(case):
            kwargs = case.as_werkzeug_kwargs()
            body = kwargs.get("json")
            data = json.dumps(body) if "json" in kwargs else kwargs.get("data") or ""
            query = kwargs.get("query_string") or {}
            response = client.generic(
                case.method.upper(),
                case.formatted_path,
                data=data,
                content_type="application/json",
                QUERY_STRING=urlencode(query, doseq=True),
                HTTP_AUTHORIZATION=emsp.auth,
            )
            seen[response.json().get("status_code")] += 1
            if response.status_code >= 500:
                failures.append((case.method, case.formatted_path, query, body,
                                 response.content[:300]))  # fmt: skip
            assert response["Content-Type"].startswith("application/json")
            assert "status_code" in response.json()

        check()
    assert failures == []
    # The run reached the OCPI layer with valid and with invalid requests.
    assert seen[1000] > 20 and seen[2001] > 20, seen
