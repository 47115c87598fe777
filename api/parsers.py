"""The API's JSON parser: a request body is a bounded, plainly nested JSON document, or a 400.

``json.loads`` recurses once per nesting level, so a body of 100,000 ``[`` raises RecursionError (a 500 in
DRF's own parser). Here the nesting is measured before parsing, in one pass that skips strings, and a body
nested deeper than ``MAX_DEPTH`` is refused; NaN and Infinity, which are not JSON, are refused too.
"""
from __future__ import annotations

import json
import re

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

# No request of this API nests deeper than 2 (an object of scalars); room for clients that wrap things.
MAX_DEPTH = 16
# Brackets and string delimiters: what the depth scan has to look at.
_TOKENS = re.compile(rb'["\\\[\]{}]')


def json_depth(raw: bytes) -> int:
    """The deepest nesting of ``[`` / ``{`` in ``raw``, outside strings (stops counting past ``MAX_DEPTH``)."""
    depth = deepest = 0
    in_string = False
    skip_at = -1  # the character after a backslash in a string is not a delimiter
    for match in _TOKENS.finditer(raw):
        at, char = match.start(), match.group()
        if at == skip_at:
            continue
        if in_string:
            if char == b"\\":
                skip_at = at + 1
            elif char == b'"':
                in_string = False
        elif char == b'"':
            in_string = True
        elif char in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    break
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


def _not_json(name: str):
    raise ValueError(f"{name} is not JSON")


class JSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise ParseError(f"the body is larger than {limit} bytes")
        if json_depth(raw) > MAX_DEPTH:
            raise ParseError(f"the body is nested deeper than {MAX_DEPTH} levels")
        try:
            return json.loads(raw.decode("utf-8"), parse_constant=_not_json)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"the body is not JSON: {exc}") from None
