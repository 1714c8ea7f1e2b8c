"""Text others wrote, made safe to show on an admin's terminal, and commands made safe to paste.

Browser-supplied pairing fields (name, platform, IP), journal lines and a gateway's own output
reach our output. Printed raw, an OSC or CSI escape in them can retitle or rewrite the admin's
terminal, a CR or LF can forge a line of ours, and U+202E (right-to-left override) can make
`approve evil` read as something else. `printable` escapes every such character; `shell_line`
quotes a command for copy-paste so that no word of it can be more than one argument, and no
control character survives raw even inside quotes.

One function each, used at every place that prints such text (tests/core/test_untrusted.py
lists the places through the output they make).
"""

from __future__ import annotations

import shlex
import unicodedata

# Categories shown escaped: Cc (C0/C1 controls, DEL), Cf (format: bidi overrides and isolates,
# zero-width characters), Zl and Zp (U+2028, U+2029: line and paragraph separators).
_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else (f"\\U{code:08x}")
    )


def printable(text: str) -> str:
    """`text` with every control, bidirectional-format and line-separator character written as
    a backslash escape (`\\x1b`, `\\r`, `\\n`, `\\u202e`); everything else unchanged."""
    if text.isprintable():  # the common case, in C
        return text
    return "".join(_escape(c) if _unsafe(c) else c for c in text)


def shell_word(word: str) -> str:
    """One word for a POSIX shell: `shlex.quote`, or bash's `$'...'` when it holds a character
    `printable` would escape (so the pasted line shows, and passes, exactly this word)."""
    if not any(_unsafe(c) for c in word):
        return shlex.quote(word)
    body = "".join(_escape(c) if _unsafe(c) else "\\" + c if c in "\\'" else c for c in word)
    return f"$'{body}'"


def shell_line(argv: tuple[str, ...] | list[str]) -> str:
    """A command line to paste: every word through `shell_word`."""
    return " ".join(shell_word(word) for word in argv)
