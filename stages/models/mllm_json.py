"""Reading a JSON answer out of a multimodal model's reply, and checking it against a small
schema. Models wrap JSON in prose or ```json fences and sometimes drop or mistype keys; a reply
that does not fit is reported with a reason, never patched up.

A schema is a dict from required key to its type: `str`, `int`, `float`, `bool`, `dict`, `list`,
or a one-element list such as `[str]` for a non-empty list of that type. Strings must not be
blank. Keys the schema does not name are kept as they are."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class ParsedReply:
    value: dict[str, Any] | None
    reason: str | None = None  # why there is no value

    @property
    def ok(self) -> bool:
        return self.value is not None


def extract_json_object(text: str | None) -> ParsedReply:
    """The first JSON object in `text`: inside a fenced block if there is one, else the first
    `{` from which a whole object decodes. Text after the object is ignored."""
    if not text or not text.strip():
        return ParsedReply(None, "empty reply")
    for block in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        found = _first_object(block)
        if found is not None:
            return ParsedReply(found)
    if "{" not in text:
        return ParsedReply(None, "no JSON object in the reply")
    return ParsedReply(None, "the reply's JSON does not parse")


def _first_object(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    while start != -1:
        try:
            value, _ = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def validate(value: dict[str, Any], schema: Schema) -> ParsedReply:
    for key, expected in schema.items():
        if key not in value:
            return ParsedReply(None, f"missing key '{key}'")
        problem = _type_problem(value[key], expected)
        if problem:
            return ParsedReply(None, f"key '{key}': {problem}")
    return ParsedReply(value)


def parse_reply(text: str | None, schema: Schema) -> ParsedReply:
    """Extract, then validate: the one call a stage makes."""
    parsed = extract_json_object(text)
    return validate(parsed.value, schema) if parsed.ok else parsed


def _type_problem(item: Any, expected: Any) -> str | None:
    if isinstance(expected, list):
        if not isinstance(item, list):
            return f"expected a list, got {_name(item)}"
        if not item:
            return "expected a non-empty list"
        for i, element in enumerate(item):
            problem = _type_problem(element, expected[0])
            if problem:
                return f"item {i}: {problem}"
        return None
    # bool is an int to Python, never to a schema; an int is a fine float
    if expected is float:
        fits = isinstance(item, (int, float)) and not isinstance(item, bool)
    elif expected is int:
        fits = isinstance(item, int) and not isinstance(item, bool)
    else:
        fits = isinstance(item, expected)
    if not fits:
        return f"expected {expected.__name__}, got {_name(item)}"
    if isinstance(item, str) and not item.strip():
        return "blank string"
    return None


def _name(item: Any) -> str:
    return "null" if item is None else type(item).__name__
