"""Liveness, readiness and metrics: plain Django views, JSON or the Prometheus text format,
outside the staff login (docs/operations.md)."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from .checks import readiness_checks
from .metrics import metrics_text

SCOPES = ("stack", "web")


@require_GET
def liveness(request: HttpRequest) -> HttpResponse:
    """The process is up and answers; nothing else is asked."""
    response = JsonResponse({"status": "ok"})
    add_never_cache_headers(response)
    return response


@require_GET
async def readiness(request: HttpRequest) -> HttpResponse:
    """Every check of the scope, in parallel: 200 when all pass, else 503; the body says which
    failed and why."""
    scope = request.GET.get("scope", "stack")
    if scope not in SCOPES:
        return JsonResponse({"error": f"scope is one of {', '.join(SCOPES)}"}, status=400)
    checks = readiness_checks(scope)
    # Threads of the request's own for the blocking checks, let go at once: a check that hangs
    # has its answer replaced by its timeout and does not hold the response.
    executor = ThreadPoolExecutor(len(checks), thread_name_prefix="readiness")
    try:
        results = await asyncio.gather(*(check.get_result(executor) for check in checks.values()))
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    body: dict[str, dict] = {}
    for name, result in zip(checks, results, strict=True):
        entry = {"status": "ok" if result.error is None else "unavailable"}
        if result.error is not None:
            entry["error"] = result.error.message
        entry["seconds"] = round(result.time_taken, 3)
        entry |= getattr(result.check, "detail", {})
        body[name] = entry
    ready = all(result.error is None for result in results)
    response = JsonResponse(
        {"status": "ok" if ready else "unavailable", "scope": scope, "checks": body},
        status=200 if ready else 503,
    )
    add_never_cache_headers(response)
    return response


def metrics_allowed(request: HttpRequest) -> int | None:
    """None if the request may read the metrics, else the HTTP status to refuse it with:
    METRICS_TOKEN asks for `Authorization: Bearer <token>`, METRICS_ALLOWED_NETWORKS for a
    client address in one of them; with neither set, only DEBUG serves metrics."""
    token = settings.METRICS_TOKEN
    networks = settings.METRICS_ALLOWED_NETWORKS
    if not token and not networks:
        return None if settings.DEBUG else 404
    if networks:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return 403
        if not any(address in ipaddress.ip_network(net, strict=False) for net in networks):
            return 403
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            return 401
    return None


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refused = metrics_allowed(request)
    if refused is not None:
        response = HttpResponse(status=refused)
        if refused == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    response = HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
    add_never_cache_headers(response)
    return response
