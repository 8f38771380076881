"""Text that came from outside (file names, labels) made safe to show or to put in a CSV cell.

Two dangers, one function each, used wherever such text leaves the program:

* `printable`: a terminal runs control characters (``\\x1b[...`` escape sequences,
  carriage returns that overwrite a line, bidi overrides that reverse it), and a
  file name that is not valid UTF-8 reaches Python as lone surrogates
  (``os.fsdecode``'s ``surrogateescape``), which ``print`` and logging cannot even
  encode. Both are written as visible escapes: ``\\x1b``, ``\\n``, ``\\u202e``, and
  ``\\xff`` for an undecodable byte.
* `safe_cell`: a spreadsheet runs a CSV cell starting with ``= + - @`` (or a tab or
  carriage return) as a formula ("CSV injection"); such cells get a leading ``'``.

Example:
    >>> printable("cat\\x1b[2J.jpg")
    'cat\\\\x1b[2J.jpg'
    >>> safe_cell("=HYPERLINK(...)")
    "'=HYPERLINK(...)"
"""

from __future__ import annotations

import os
import unicodedata

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Bidirectional embedding/override/isolate controls: they reorder the text shown after them.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if char in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def printable(value) -> str:
    """``value`` (a str, bytes or path) as text safe to print: control characters escaped.

    C0/C1 control characters, DEL, bidi controls and lone surrogates (bytes of a
    non-UTF-8 file name) become backslash escapes; everything else, other scripts and
    emoji included, is kept as it is.

    Args:
        value: Text, bytes (decoded with ``os.fsdecode``) or a path.

    Returns:
        The text with the dangerous characters escaped.
    """
    if isinstance(value, bytes):
        text = os.fsdecode(value)
    else:
        text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
        if isinstance(text, bytes):
            text = os.fsdecode(text)
    if text.isprintable():
        return text
    return "".join(
        _escape(ch) if unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI_CONTROLS else ch for ch in text
    )


def safe_cell(value) -> str:
    """A CSV text cell a spreadsheet will not run as a formula (leading ``= + - @``, tab, CR get a ``'``).

    Args:
        value: The cell (None gives an empty cell).

    Returns:
        The text, with a ``'`` in front when it would start a formula.
    """
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text
