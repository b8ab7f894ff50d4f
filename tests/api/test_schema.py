"""Schemathesis over the API's OpenAPI document, authenticated with every scope: no 5xx, and
every response matches the schema (status code, content type, body)."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.settings import patched_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import DataGenerationMethod
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.schema import API_SCHEMA_SETTINGS
from tests.api.conftest import token_for
from tests.api.factories import ClientFactory

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 8  # per operation and generation method: keeps the suite fast
CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance)  # fmt: skip


def api_schema() -> dict:
    with patched_settings(API_SCHEMA_SETTINGS):
        return SchemaGenerator().get_schema(request=None, public=True)


def test_schema_fuzzing_finds_no_server_errors_and_matches_the_schema(site, driver, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 100_000
    client = ClientFactory(scopes=["read", "book", "drivers", "webhooks"])
    headers = {"Authorization": f"Bearer {token_for(client)}"}
    app = get_wsgi_application()
    # As Django's test client does: a request must not close the test's connection.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    try:
        failures = _fuzz(app, headers)
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)
    assert failures == [], "\n".join(" ".join(map(str, f)) for f in failures[:6])


def _fuzz(app, headers: dict) -> list:
    schema = schemathesis.from_dict(
        api_schema(), data_generation_methods=DataGenerationMethod.all()
    )
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        def check(case):
            response = case.call_wsgi(app=app, headers=headers)
            try:
                case.validate_response(response, checks=CHECKS)
            except AssertionError as error:  # schemathesis' CheckFailed is one
                failures.append((case.method, case.formatted_path, str(error)[:1500]))

        check()
    return failures
