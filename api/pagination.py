"""Cursor pagination for every list: `per_page` 1-100 (default 100) and an opaque `cursor`
from `links.next`. Ordered by id, which only grows: a page never repeats or skips a row when
others are inserted meanwhile."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

MAX_PER_PAGE = 100


class ApiCursorPagination(CursorPagination):
    ordering = "id"
    page_size = MAX_PER_PAGE
    page_size_query_param = "per_page"
    max_page_size = MAX_PER_PAGE

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= MAX_PER_PAGE:
            raise ValidationError({"per_page": [f"Give a number from 1 to {MAX_PER_PAGE}."]})
        return size

    def get_paginated_response(self, data) -> Response:
        links = {"next": self.get_next_link(), "prev": self.get_previous_link()}
        return Response({"data": data, "links": links})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["data", "links"],
            "properties": {
                "data": schema,
                "links": {"type": "object", "properties": {"next": link, "prev": link}},
            },
        }
