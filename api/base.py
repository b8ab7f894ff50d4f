"""The base of every API view: Bearer auth, scope per method, throttling per client and scope
with X-RateLimit-* headers, the one exception handler, camelCase JSON."""

from __future__ import annotations

from functools import cached_property

from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework.exceptions import NotFound
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from .exceptions import api_exception_handler
from .models import Client
from .pagination import ApiCursorPagination
from .permissions import HasScope
from .selectors import client_of_token
from .throttling import ClientScopeThrottle


class ApiView(APIView):
    authentication_classes = [OAuth2Authentication]
    permission_classes = [HasScope]
    throttle_classes = [ClientScopeThrottle]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]
    scopes: dict[str, str] = {"GET": "read"}

    def get_exception_handler(self):
        return api_exception_handler

    @cached_property
    def client(self) -> Client:
        """The API client of the request's token. Every token with a scope has one: api.scopes
        grants none to an application without a Client row."""
        return client_of_token(self.request.auth)

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        if any("\x00" in str(value) for value in kwargs.values()):
            raise NotFound("The record is not found.")  # PostgreSQL text cannot hold NUL

    def check_throttles(self, request) -> None:
        self.applied_throttles = []
        for throttle in self.get_throttles():
            allowed = throttle.allow_request(request, self)
            self.applied_throttles.append(throttle)
            if not allowed:
                self.throttled(request, throttle.wait())

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        for throttle in getattr(self, "applied_throttles", []):
            response["X-RateLimit-Limit"] = str(throttle.limit)
            response["X-RateLimit-Remaining"] = str(throttle.remaining)
            response["X-RateLimit-Reset"] = str(throttle.reset)
        return response

    def paginate(self, queryset, serializer_class, **context):
        paginator = ApiCursorPagination()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        data = serializer_class(page, many=True, context={"request": self.request, **context})
        return paginator.get_paginated_response(data.data)
