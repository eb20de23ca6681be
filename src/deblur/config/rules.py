"""Value rules of config nodes: ``key=value: expectation`` lines, written once and read by both the
constructors (a refused argument is a ``ValueError`` with that line) and ``check_train_config`` (each line
one problem of the config).

    >>> p = Problems()
    >>> p.int_at_least({"width": 0}, "model", "width", 1)
    >>> p.lines
    ['model.width=0: an integer >= 1']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

#: a component's value rules: its config node (all or some of its keys) -> problem lines
Rules = Callable[[Mapping[str, Any]], list[str]]


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Problems:
    """Collects ``key=value: expectation`` lines; each check skips a key the node does not hold."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, key: str, value: Any, expected: str) -> None:
        shown = repr(value) if isinstance(value, str) else value
        self.lines.append(f"{key}={shown}: {expected}")

    def int_at_least(self, node: Mapping[str, Any], prefix: str, key: str, minimum: int,
                     nullable: bool = False, what: str = "") -> None:  # fmt: skip
        if key not in node:
            return
        value = node[key]
        if value is None and nullable:
            return
        if not is_int(value) or value < minimum:
            expected = f"an integer >= {minimum}" + (" or null" if nullable else "")
            self.add(f"{prefix}.{key}", value, expected + (f" ({what})" if what else ""))

    def number(self, node: Mapping[str, Any], prefix: str, key: str, test: Callable[[float], bool],
               expected: str, nullable: bool = False) -> None:  # fmt: skip
        if key not in node:
            return
        value = node[key]
        if value is None and nullable:
            return
        if not is_number(value) or not test(value):
            self.add(f"{prefix}.{key}", value, expected + (" or null" if nullable else ""))

    def choice(self, node: Mapping[str, Any], prefix: str, key: str, options: tuple[str, ...]) -> None:
        if key in node and node[key] not in options:
            self.add(f"{prefix}.{key}", node[key], f"one of {', '.join(options)}")


def refuse(lines: list[str]) -> None:
    """Raise ``ValueError`` with the problem lines (one line: exactly it), for a constructor; nothing when
    there are none."""
    if lines:
        raise ValueError("; ".join(lines))
