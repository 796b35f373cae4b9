"""The selection grammar of BData files: which columns an expression such as ``ROI_VC = 1`` picks.

This is the selection grammar of the lab's ``bdpy`` (used by ``BData.select``):

- a bare key (``ROI_VC``) selects the columns whose value for that key is 1;
- ``*`` in a key is a wildcard (``ROI_V*`` = any key starting with ``ROI_V``;
  columns where any matching key is 1);
- ``KEY = N`` compares the bare-key selection (a 0/1 vector) with N. This is
  bdpy's semantics: ``ROI_VC = 0`` is "not ROI_VC = 1" and therefore also
  returns the non-voxel columns (labels, run, session), and any N other than
  0 or 1 selects nothing;
- ``|`` and ``+`` (union), ``&`` (intersection), ``-`` (difference), all of
  equal precedence and left-associative (``A | B & C`` is ``(A | B) & C``);
  parentheses group. ``"quoted keys"`` may contain operator characters.

One deliberate difference: bdpy's parser mishandles a closing parenthesis
nested inside another group followed by more operators
(``A & (B | (C & D) | E)``); this module evaluates such expressions as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from e2e_recon.errors import DataError

__all__ = ["Token", "parse_selection", "select_columns"]

_OPERATORS = ("|", "+", "&", "-", "=")
_SET_OPERATORS = ("|", "&", "-")


def _tokenize(expr: str) -> list[str]:
    """Split a selection expression into keys, numbers, operators and parentheses.

    Spaces outside quotes are ignored (as in bdpy); ``+`` is read as ``|``.
    """
    tokens: list[str] = []
    buf = ""
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch in "\"'":
            end = expr.find(ch, i + 1)
            if end < 0:
                raise DataError(f"Selection {expr!r}: unclosed quote {ch} at position {i}.")
            buf += expr[i + 1 : end]
            i = end + 1
            continue
        if ch in _OPERATORS or ch in "()":
            if buf:
                tokens.append(buf)
                buf = ""
            tokens.append("|" if ch == "+" else ch)
        elif not ch.isspace():
            buf += ch
        i += 1
    if buf:
        tokens.append(buf)
    return tokens


Token = tuple[str, Any]  # ("key", name) | ("num", value) | ("op", operator)


def parse_selection(expr: str) -> list[Token]:
    """Parse a selection expression into reverse Polish notation.

    Parameters
    ----------
    expr : str
        For example ``"ROI_V1 | ROI_V2 - ROI_HVC"`` or ``"(ROI_V* = 1) & VoxelData"``.

    Returns
    -------
    list of (kind, value)
        Operands (``("key", name)``, ``("num", value)``) and operators (``("op", "|")``)
        in evaluation order.

    Raises
    ------
    DataError
        If the expression is empty or malformed (unbalanced parentheses, missing operand).
    """
    tokens = _tokenize(expr)
    if not tokens:
        raise DataError("Empty selection expression: give a metadata key such as 'ROI_VC = 1'.")
    rpn: list[Token] = []
    pos = _parse_expr(tokens, 0, rpn, expr)
    if pos != len(tokens):
        raise DataError(f"Selection {expr!r}: unexpected {tokens[pos]!r} (unbalanced ')'?).")
    return rpn


def _parse_expr(tokens: list[str], pos: int, rpn: list[Token], expr: str) -> int:
    """expr := compare (setop compare)*  -- equal precedence, left-associative."""
    pos = _parse_compare(tokens, pos, rpn, expr)
    while pos < len(tokens) and tokens[pos] in _SET_OPERATORS:
        op = tokens[pos]
        pos = _parse_compare(tokens, pos + 1, rpn, expr)
        rpn.append(("op", op))
    return pos


def _parse_compare(tokens: list[str], pos: int, rpn: list[Token], expr: str) -> int:
    """compare := primary ('=' NUMBER)*  -- '=' binds tighter than the set operators."""
    pos = _parse_primary(tokens, pos, rpn, expr)
    while pos < len(tokens) and tokens[pos] == "=":
        number = _as_number(tokens[pos + 1]) if pos + 1 < len(tokens) else None
        if number is None:
            raise DataError(f"Selection {expr!r}: '=' must be followed by a number (KEY = 1).")
        rpn.extend([("num", number), ("op", "=")])
        pos += 2
    return pos


def _parse_primary(tokens: list[str], pos: int, rpn: list[Token], expr: str) -> int:
    if pos >= len(tokens):
        raise DataError(f"Selection {expr!r} ends where a key or '(' was expected.")
    tok = tokens[pos]
    if tok == "(":
        pos = _parse_expr(tokens, pos + 1, rpn, expr)
        if pos >= len(tokens) or tokens[pos] != ")":
            raise DataError(f"Selection {expr!r}: missing ')'.")
        return pos + 1
    if tok in _OPERATORS or tok == ")":
        raise DataError(f"Selection {expr!r}: expected a key before {tok!r}.")
    rpn.append(("key", tok))
    return pos + 1


def _as_number(token: str) -> float | None:
    try:
        return float(token)
    except ValueError:
        return None


def select_columns(
    expr: str,
    keys: Sequence[str],
    values: np.ndarray,
    missing_key: Callable[[str], str],
) -> np.ndarray:
    """Evaluate a selection expression on metadata rows.

    Parameters
    ----------
    expr : str
        Selection expression (grammar in the module docstring).
    keys : sequence of str
        Metadata keys, one per row of ``values``.
    values : ndarray, shape (n_keys, n_cols), float64
        Metadata values (NaN where a key does not apply).
    missing_key : callable
        Returns the message for a key that matches no metadata key (it names the
        file and the keys that exist).

    Returns
    -------
    ndarray, shape (n_cols,), bool
        The selected columns (possibly none).

    Raises
    ------
    DataError
        For a malformed expression or a key that matches nothing.
    """
    stack: list[Any] = []
    for kind, value in parse_selection(expr):
        if kind == "op":
            right, left = stack.pop(), stack.pop()
            stack.append(_apply(value, left, right))
        elif kind == "num":
            stack.append(value)
        else:
            stack.append(_key_vector(value, keys, values, expr, missing_key))
    return np.asarray(stack.pop(), dtype=bool)


def _key_vector(
    key: str,
    keys: Sequence[str],
    values: np.ndarray,
    expr: str,
    missing_key: Callable[[str], str],
) -> np.ndarray:
    """Columns where any key matching ``key`` (``*`` = wildcard) equals 1; shape (n_cols,)."""
    pattern = re.compile(".*".join(re.escape(p) for p in key.split("*")) + r"\Z")
    rows = [i for i, k in enumerate(keys) if pattern.match(k)]
    if not rows:
        raise DataError(f"Selection {expr!r}: " + missing_key(key))
    return np.any(values[rows] == 1, axis=0)


def _apply(op: str, left: np.ndarray, right: Any) -> np.ndarray:
    if op == "=":
        # bdpy compares the 0/1 key vector with the number (see module docstring).
        return np.asarray(left == right, dtype=bool)
    if op == "|":
        return left | right
    if op == "&":
        return left & right
    return left & ~right
