"""The wizard's settings form: a form generated from config slots' JSON Schemas, and back.

``string`` → text, ``number``/``integer`` → text with an input mode, ``boolean`` → checkbox,
``enum`` → select (option values are JSON, so enums of any type work), anything else → a JSON
textarea. The schema's ``title`` and ``description`` label a field. What comes back is parsed
by kind and checked against the schema on the server (:func:`read`), one message per field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from authbridge import errors
from authbridge.solutions.specs import value_problems
from authbridge.storage.models import ConfigSlot


@dataclass(frozen=True)
class ConfigField:
    """One visible config slot as a form field, generated from its JSON Schema.

    ``kind`` is ``text``, ``number``, ``integer``, ``checkbox``, ``select`` (an ``enum``; the
    options' values are JSON) or ``json`` (objects, arrays, anything else: a JSON textarea).
    """

    slot: ConfigSlot
    kind: str
    label: str
    description: str | None
    value: str
    options: Sequence[tuple[str, str]] = ()

    @property
    def name(self) -> str:
        return self.slot.external_id


def _schema_type(schema: Mapping[str, Any]) -> str | None:
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), None)
    return declared if isinstance(declared, str) else None


def field_for(
    slot: ConfigSlot, values: Mapping[str, Any], entered: Mapping[str, str] | None
) -> ConfigField:
    schema = slot.json_schema or {}
    kind = {
        "string": "text",
        "number": "number",
        "integer": "integer",
        "boolean": "checkbox",
    }.get(_schema_type(schema) or "", "json")
    options: list[tuple[str, str]] = []
    if isinstance(schema.get("enum"), list):
        kind = "select"
        options = [
            (json.dumps(v), v if isinstance(v, str) else json.dumps(v)) for v in schema["enum"]
        ]
    present = slot.external_id in values
    current = values.get(slot.external_id)
    if entered is not None:
        shown = entered.get(slot.external_id, "")
    elif not present:
        shown = ""
    elif kind == "select" or kind == "json":
        shown = json.dumps(current)
    elif kind == "checkbox":
        shown = "true" if current is True else ""
    else:
        shown = str(current)
    description = schema.get("description")
    title = schema.get("title")
    return ConfigField(
        slot=slot,
        kind=kind,
        label=title if isinstance(title, str) and title else slot.title,
        description=description if isinstance(description, str) else None,
        value=shown,
        options=options,
    )


def parse(config_field: ConfigField, raw: str | None) -> Any:
    """The JSON value of one submitted field; :class:`ValueError` with a message for people."""
    text = (raw or "").strip()
    kind = config_field.kind
    if kind == "checkbox":
        return raw == "true"
    if kind == "text":
        return raw or ""
    if not text:
        raise ValueError("this field is required")
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("enter a whole number") from None
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise ValueError("enter a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("enter a number")
        return (
            int(number)
            if number.is_integer() and "." not in text and "e" not in text.lower()
            else number
        )
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError("enter valid JSON") from None
    if kind == "select" and text not in {option for option, _ in config_field.options}:
        raise ValueError("choose one of the options")
    return value


def read(fields: Sequence[ConfigField], submitted: Mapping[str, str]) -> dict[str, Any]:
    """The values of a submitted form by slot; :class:`errors.FormErrors` names each wrong field."""
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}
    for config_field in fields:
        name = config_field.name
        try:
            value = parse(config_field, submitted.get(name))
        except ValueError as error:
            problems[name] = str(error)
            continue
        found = value_problems(config_field.slot.json_schema or {}, value)
        if found:
            problems[name] = found[0]
        else:
            values[name] = value
    if problems:
        raise errors.FormErrors(problems)
    return values
