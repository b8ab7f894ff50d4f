"""The JSON parser of every OCPI view: a body is bounded in size and nesting before anything
is stored, so whatever is stored can be read back.

A BookingRequest is stored as received and returned inside the Booking; a body nested deeper
than the JSON writer can go (orjson stops at 255 levels) was stored and then failed every GET
of it and of the party's booking list (issue 18). No OCPI object nests more than a few levels.
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from . import responses as r
from .exceptions import OcpiError

MAX_BODY_BYTES = 256 * 1024  # OCPI bodies we receive (a Token, a BookingRequest) are ~2 KiB
MAX_DEPTH = 32  # levels of nested objects and arrays; OCPI objects use fewer than 8


def depth(value: Any) -> int:
    """How many levels of objects and arrays `value` nests (0 for a scalar), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


class OcpiJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        body = stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            raise OcpiError(
                r.INVALID_PARAMETERS, f"body: larger than {MAX_BODY_BYTES} bytes.", http_status=413
            )
        too_deep = OcpiError(
            r.INVALID_PARAMETERS,
            f"body: nested deeper than {MAX_DEPTH} levels of objects and arrays.",
            http_status=400,
        )
        try:
            data = json.loads(body, parse_constant=_not_json)
        except RecursionError:
            raise too_deep from None
        except ValueError as error:
            raise ParseError(f"JSON parse error - {error}") from error
        if depth(data) > MAX_DEPTH:
            raise too_deep
        return data
