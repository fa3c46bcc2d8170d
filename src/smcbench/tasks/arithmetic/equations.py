"""Prefix equations of math word problems: parsing, validation, evaluation, templates.

An equation is a list of prefix tokens: binary operators (``+ - * / ^``), number masks ``numberK``
(the K-th quantity of the problem, 0-based) and literal constants (``12``, ``0.01``). Constants are
written in one canonical form (:func:`canonical_constant`) so that ``12.0`` and ``12`` are one
output-vocabulary entry.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable, Sequence

OPERATORS: tuple[str, ...] = ("+", "-", "*", "/", "^")
MASK_RE = re.compile(r"^number(\d+)$")
#: masks inside running text; a word boundary keeps "number" alone ("what number ...") out
MASK_IN_TEXT_RE = re.compile(r"\bnumber(\d+)\b")
#: value accuracy tolerance of the SVAMP code (absolute difference)
VALUE_TOLERANCE = 1e-4


class EquationError(ValueError):
    """A malformed prefix equation (message says which token and why)."""


def canonical_constant(token: str) -> str:
    """The canonical spelling of a numeric constant token (``'12.0'`` -> ``'12'``)."""
    value = float(token)
    if not math.isfinite(value):
        raise EquationError(f"constant {token!r} is not a finite number")
    return f"{value:.10g}"


def is_constant(token: str) -> bool:
    """True when ``token`` is a numeric literal (not an operator, not a mask)."""
    if token in OPERATORS or MASK_RE.match(token):
        return False
    try:
        return math.isfinite(float(token))
    except ValueError:
        return False


def mask_index(token: str) -> int | None:
    """K of ``numberK``, or None for other tokens."""
    m = MASK_RE.match(token)
    return int(m.group(1)) if m else None


def check_prefix(tokens: Sequence[str], num_numbers: int | None = None) -> None:
    """Raise :class:`EquationError` unless ``tokens`` is one complete prefix expression.

    With ``num_numbers`` given, every mask ``numberK`` must have K < num_numbers.
    """
    if not tokens:
        raise EquationError("empty equation")
    need = 1  # operands still required to complete the expression
    for i, tok in enumerate(tokens):
        if need == 0:
            raise EquationError(f"extra token {tok!r} at position {i} after a complete expression")
        if tok in OPERATORS:
            need += 1
            continue
        k = mask_index(tok)
        if k is not None:
            if num_numbers is not None and k >= num_numbers:
                raise EquationError(f"mask {tok!r} has no value (the problem has {num_numbers} numbers)")
        elif not is_constant(tok):
            raise EquationError(f"unknown token {tok!r} at position {i} (expected + - * / ^, numberK or a constant)")
        need -= 1
    if need:
        raise EquationError(f"incomplete expression: {need} operand(s) missing after {' '.join(tokens)!r}")


def _apply(op: str, a: float, b: float) -> float | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return None if b == 0 else a / b
    try:  # "^": huge or complex powers count as undefined, like a division by zero
        r = a ** b
    except (OverflowError, ZeroDivisionError):
        return None
    return r if isinstance(r, float | int) and math.isfinite(r) else None


def evaluate_prefix(tokens: Sequence[str], numbers: Sequence[float]) -> float | None:
    """Value of a prefix equation with ``numberK`` replaced by ``numbers[K]``.

    Returns None when the expression is undefined (division by zero, overflow). A malformed
    expression or a mask without a value raises :class:`EquationError`.
    """
    check_prefix(tokens, len(numbers))
    stack: list[float | None] = []
    for tok in reversed(tokens):  # prefix read right to left is postfix
        if tok in OPERATORS:
            a, b = stack.pop(), stack.pop()
            stack.append(None if a is None or b is None else _apply(tok, a, b))
        else:
            k = mask_index(tok)
            stack.append(float(numbers[k]) if k is not None else float(tok))
    value = stack[0]
    if value is not None and not math.isfinite(value):
        return None
    return value


def values_match(pred: float | None, gold: float | None) -> bool:
    """The SVAMP code's answer test: both defined and within :data:`VALUE_TOLERANCE`."""
    return pred is not None and gold is not None and abs(pred - gold) < VALUE_TOLERANCE


def is_complete_prefix(tokens: Sequence[str]) -> bool:
    """True when ``tokens`` forms exactly one complete prefix expression."""
    try:
        check_prefix(tokens)
    except EquationError:
        return False
    return True


def template_counts(equations: Iterable[Sequence[str]]) -> Counter:
    """How often each equation (as a space-joined template) occurs."""
    return Counter(" ".join(eq) for eq in equations)


def most_frequent_fitting(counts: Counter, num_numbers: int) -> list[str] | None:
    """The most frequent template whose masks all exist in a problem with ``num_numbers`` numbers
    (ties broken by the template string, so the choice is deterministic)."""
    for template, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        toks = template.split()
        if all((mask_index(t) is None) or mask_index(t) < num_numbers for t in toks):
            return toks
    return None
