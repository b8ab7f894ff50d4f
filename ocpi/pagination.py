"""OCPI pagination for every list GET: `offset`/`limit` (server maximum), `date_from` inclusive
and `date_to` exclusive on last_updated, `Link rel="next"`, `X-Total-Count`, `X-Limit`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from django.db.models import QuerySet
from rest_framework import serializers

from .fields import InputSerializer, OcpiDateTimeField
from .responses import ocpi_response

MAX_LIMIT = 100  # objects per page; eMSPs asking for more get this many and X-Limit: 100


class PageFilterSerializer(InputSerializer):
    date_from = OcpiDateTimeField(required=False)
    date_to = OcpiDateTimeField(required=False)
    offset = serializers.IntegerField(required=False, min_value=0, default=0, max_value=10**9)
    limit = serializers.IntegerField(required=False, min_value=0, max_value=10**9)

    def validate(self, attrs):
        date_from, date_to = attrs.get("date_from"), attrs.get("date_to")
        if date_from and date_to and date_to < date_from:
            raise serializers.ValidationError({"date_to": "Must not be before date_from."})
        return attrs


def changed_between(items: QuerySet, filters: Mapping[str, Any], field: str = "last_updated"):
    """The items whose `field` is in [date_from, date_to) of a PageFilterSerializer's data:
    the OCPI rule for every list (date_from inclusive, date_to exclusive)."""
    if filters.get("date_from"):
        items = items.filter(**{f"{field}__gte": filters["date_from"]})
    if filters.get("date_to"):
        items = items.filter(**{f"{field}__lt": filters["date_to"]})
    return items


def paginated_response(
    request,
    items: QuerySet | Sequence,
    render: Callable[[Sequence[Any]], list[Any]],
    *,
    offset: int = 0,
    limit: int | None = None,
):
    """The page of `items` at offset/limit, rendered, in the envelope with the paging headers."""
    page_size = MAX_LIMIT if limit is None else min(limit, MAX_LIMIT)
    total = items.count() if isinstance(items, QuerySet) else len(items)
    page = list(items[offset : offset + page_size])
    headers = {"X-Total-Count": str(total), "X-Limit": str(MAX_LIMIT)}
    if offset + page_size < total and page_size > 0:
        params = request.query_params.copy()
        params["offset"] = str(offset + page_size)
        params["limit"] = str(page_size)
        url = request.build_absolute_uri(request.path) + "?" + urlencode(list(params.lists()), True)
        headers["Link"] = f'<{url}>; rel="next"'
    return ocpi_response(render(page), headers=headers)
