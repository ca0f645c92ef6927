"""Whether a JSON value can be stored: no NUL in text or keys, no absurd nesting.

PostgreSQL text cannot hold NUL, and no authbridge document (a request body, a solution spec, a
config value) needs to nest deeper than :data:`MAX_DEPTH`. The walk is iterative, so no input
can exhaust the stack (a recursive check turned a 900-level body into a 500).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 32


def json_problem(value: Any, path: str = "") -> str | None:
    """Why ``value`` cannot be stored, naming where (``path`` is the value's own name), or
    ``None`` when it can."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            return f"{where or 'the value'}: text must not contain NUL characters"
        if isinstance(item, Mapping | list | tuple) and depth >= MAX_DEPTH:
            return f"{where or 'the value'}: nested deeper than {MAX_DEPTH} levels"
        if isinstance(item, Mapping):
            for key, inner in item.items():
                name = f"{where}.{key}" if where else str(key)
                if "\x00" in str(key):
                    return f"{where or 'the value'}: a key contains NUL characters"
                stack.append((inner, name, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((inner, f"{where}[{i}]", depth + 1) for i, inner in enumerate(item))
    return None
