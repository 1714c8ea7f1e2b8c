"""Safe YAML reading with positions: bytes in, plain data plus a path -> (line, column) map out.

PyYAML's scanner and parser produce events; the small composer and converter here replace its
composer and constructor so that:

- scalars resolve as in YAML 1.2 (core schema): only `true`/`false` are booleans, `yes`/`no`/`on`/
  `off`/`y`/`n` stay strings (and are remembered, so the loader can point at them);
- every value and key keeps its line and column, so errors found later (schema, semantic rules)
  point at the right place;
- duplicate keys, non-string keys, explicit tags, multiple documents, binary data, oversized files,
  deep nesting and alias bombs ("billion laughs") are reported as errors, never tracebacks or hangs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.frozen import frozen
from reconciler.spec.errors import SpecError, SpecInvalid
from reconciler.spec.limits import MAX_BYTES as MAX_BYTES  # re-exported

MAX_NODES = 100_000  # nodes composed, and values produced (aliases count every time they expand)
MAX_DEPTH = 100  # nesting of mappings and lists

PathT = tuple[str | int, ...]

# YAML 1.1 booleans that YAML 1.2 reads as strings: accepted as strings nowhere without quotes.
YAML11_BOOLS: dict[str, bool] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "off", "Off", "OFF"), False),
}

_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_INT = re.compile(r"[-+]?[0-9]+")
_OCT = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)")
_MAX_NUMBER_CHARS = 100

_PLAIN = "!plain"  # our resolver's tag for plain (unquoted, untagged) scalars
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"


@frozen
class Loc:
    """Where a value is (1-based), and where its key is when it sits in a mapping."""

    line: int
    column: int
    key_line: int = 0
    key_column: int = 0

    def at(self, key: bool) -> tuple[int, int]:
        if key and self.key_line:
            return self.key_line, self.key_column
        return self.line, self.column


@dataclass
class Document:
    """The parsed spec: plain data (dicts, lists, scalars) and where each piece came from."""

    data: Any
    locs: dict[PathT, Loc] = field(default_factory=dict)
    # Source text of plain (unquoted) scalar values, for hints like 'quote it: "2026.10"'.
    plain: dict[PathT, str] = field(default_factory=dict)
    # Paths whose mapping key was a bare YAML 1.1 boolean word (`on:`, `no:`).
    bool_word_keys: dict[PathT, str] = field(default_factory=dict)
    # Paths already reported by the YAML reader (a tag, a bad key): later checks skip them.
    broken: set[PathT] = field(default_factory=set)

    def locate(self, path: PathT, key: bool = False) -> tuple[int, int]:
        """Line and column of `path` (its key or its value), or of its nearest existing ancestor."""
        loc = self.locs.get(path)
        if loc is not None:
            return loc.at(key)
        for n in range(len(path) - 1, -1, -1):  # absent (a missing field): its parent's key
            loc = self.locs.get(path[:n])
            if loc is not None:
                return loc.at(True)
        return 1, 1


class _Limit(Exception):
    def __init__(self, message: str, line: int, column: int, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.line, self.column, self.hint = message, line, column, hint


def field_path(path: PathT) -> str:
    """`("tailscale", "serve", 1, "https")` -> `tailscale.serve[1].https`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_$-]+", part):
            out += f".{part}" if out else part
        else:
            out += '["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out


def decode(data: bytes, filename: str) -> str | SpecError:
    """UTF-8 text of `data`, or the error that makes it unreadable as a spec."""
    if not data:
        return SpecError(
            filename,
            0,
            0,
            "",
            "the file is empty",
            "a spec needs at least apiVersion, host and profiles",
        )
    if len(data) > MAX_BYTES:
        return _too_big(filename, len(data))
    nul = data.find(b"\0")
    if nul >= 0:
        line, col = _byte_position(data, nul)
        return SpecError(
            filename, line, col, "", "this is a binary file (it contains NUL bytes), not YAML text"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _byte_position(data, exc.start)
        return SpecError(
            filename,
            line,
            col,
            "",
            f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
            "save the spec as UTF-8 text",
        )
    return text.removeprefix("\ufeff")


def _too_big(filename: str, size: int) -> SpecError:
    return SpecError(
        filename,
        0,
        0,
        "",
        f"the file is too large ({size} bytes; a spec may be at most {MAX_BYTES} bytes)",
    )


def _byte_position(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1


def read_document(data: bytes, filename: str) -> tuple[Document, list[SpecError]]:
    """The parsed document of `data` and its non-fatal errors; SpecInvalid when the bytes are
    not UTF-8 text within the limit or are not one YAML document (a spec and a fleet file)."""
    text = decode(data, filename)
    if isinstance(text, SpecError):
        raise SpecInvalid([text])
    doc, errors = parse(text, filename)
    if doc is None:
        raise SpecInvalid(errors)
    return doc, errors


def parse(text: str, filename: str) -> tuple[Document | None, list[SpecError]]:
    """Parse one YAML document. Fatal problems give (None, [error]); others come with the data."""
    try:
        root = _Composer(text).compose_single()
    except _Limit as exc:
        return None, [SpecError(filename, exc.line, exc.column, "", exc.message, exc.hint)]
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_error(exc, text, filename)]
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return None, [
            SpecError(
                filename,
                line,
                col,
                "",
                f"the character U+{ord(char):04X} is not allowed in YAML",
                "remove it, or write it as an escape inside a double-quoted string",
            )
        ]
    except yaml.YAMLError as exc:  # defensive: any other PyYAML complaint
        return None, [SpecError(filename, 1, 1, "", f"YAML error: {exc}")]
    except RecursionError:
        return None, [SpecError(filename, 1, 1, "", f"nested more than {MAX_DEPTH} levels deep")]
    if root is None:
        return None, [
            SpecError(
                filename,
                0,
                0,
                "",
                "the spec is empty (only comments or whitespace)",
                "a spec needs at least apiVersion, host and profiles",
            )
        ]
    doc = Document(None)
    errors: list[SpecError] = []
    try:
        doc.data = _Converter(doc, errors, filename).value(root, ())
    except _Limit as exc:
        return None, [SpecError(filename, exc.line, exc.column, "", exc.message, exc.hint)]
    return doc, errors


def _syntax_error(exc: Any, text: str, filename: str) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or exc.context or "invalid YAML"
    message = f"YAML syntax error: {problem}"
    if exc.context and exc.problem and exc.context_mark:
        where = exc.context_mark
        message += f" ({exc.context} at line {where.line + 1}, column {where.column + 1})"
    lines = text.split("\n")
    source_line = lines[line - 1] if 0 < line <= len(lines) else ""
    hint = None
    if "\\t" in problem or "\t" in source_line[: max(col, 1)]:
        hint = "YAML does not allow tabs for indentation; indent with spaces"
    elif "block scalar" in (exc.context or "") or "block scalar" in problem:
        hint = "a value starting with > or | begins a block scalar in YAML; quote it" + _quoted(
            lines, exc.context_mark or mark
        )
    elif "found character '@'" in problem or "found character '`'" in problem:
        hint = "a value starting with @ or ` must be quoted" + _quoted(lines, mark)
    elif "mapping values are not allowed" in problem:
        hint = 'check the indentation of this line, and quote any value that contains ": "'
    return SpecError(filename, line, col, "", message, hint)


def _quoted(lines: list[str], mark: Any) -> str:
    """`: node: ">=22.12"`, the source line with the value at `mark` quoted (or nothing)."""
    if not mark or mark.line >= len(lines):
        return ""
    line = lines[mark.line]
    value = line[mark.column :].rstrip()
    if not value or '"' in value or " #" in value:
        return ""
    return f': {line[: mark.column].strip()} "{value}"'


def show(value: Any) -> str:
    """A value as the spec would spell it: strings in double quotes, true/false/null, numbers."""
    if isinstance(value, str):
        return json_string(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def describe(value: Any, plain: str | None = None) -> str:
    """`the number 2026.10`, `the text "abc"`, `a mapping`, `null`: what a value is, for messages."""
    if value is None and plain == "":
        return "an empty value (null)"
    if isinstance(value, bool) or value is None:
        return show(value)
    if isinstance(value, int | float):
        return f"the number {plain if plain is not None else show(value)}"
    if isinstance(value, str):
        return f"the text {show(value)}"
    return show(value)


def json_string(text: str, limit: int = 60) -> str:
    """`text` in double quotes with JSON escapes, shortened to about `limit` characters."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return json.dumps(text, ensure_ascii=False)


# --- composition: events -> nodes, with limits ---------------------------------------------------


class _Alias:
    """An alias use: the anchored node, and where the alias itself is written."""

    __slots__ = ("mark", "node")

    def __init__(self, node: Any, mark: Any) -> None:
        self.node, self.mark = node, mark


class _Events(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """PyYAML's pure-Python reader, scanner and parser: the same messages everywhere."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


class _Composer:
    def __init__(self, text: str) -> None:
        self.events: Any = _Events(text)
        self.anchors: dict[str, Any] = {}
        self.open_anchors: set[str] = set()
        self.count = 0

    def compose_single(self) -> Any:
        self.events.get_event()  # StreamStart
        if self.events.check_event(StreamEndEvent):
            return None
        start = self.events.get_event()  # DocumentStart
        node = self.node(1)
        self.events.get_event()  # DocumentEnd
        if not self.events.check_event(StreamEndEvent):
            second = self.events.get_event()
            mark = second.start_mark
            raise _Limit(
                f"the file holds more than one YAML document (the first starts at line "
                f"{start.start_mark.line + 1})",
                mark.line + 1,
                mark.column + 1,
                "a spec is one document: remove the `---` separator or split the file",
            )
        if isinstance(node, ScalarNode) and node.tag == _PLAIN and node.value == "":
            return None  # `---` alone, or a document of comments
        return node

    def node(self, depth: int) -> Any:
        event = self.events.get_event()
        mark = event.start_mark
        if depth > MAX_DEPTH:
            raise _Limit(
                f"nested more than {MAX_DEPTH} levels deep", mark.line + 1, mark.column + 1
            )
        self.count += 1
        if self.count > MAX_NODES:
            raise _Limit(f"more than {MAX_NODES} YAML nodes", mark.line + 1, mark.column + 1)
        if isinstance(event, AliasEvent):
            if event.anchor in self.open_anchors:
                raise _Limit(
                    f"the alias *{event.anchor} refers to a node that contains it (recursive alias)",
                    mark.line + 1,
                    mark.column + 1,
                )
            if event.anchor not in self.anchors:
                raise _Limit(
                    f"the alias *{event.anchor} has no anchor &{event.anchor} before it",
                    mark.line + 1,
                    mark.column + 1,
                )
            return _Alias(self.anchors[event.anchor], mark)
        anchor = event.anchor
        tag = event.tag
        if isinstance(event, ScalarEvent):
            if tag is None or tag == "!":
                tag = _PLAIN if event.implicit[0] else _STR
            result: Node = ScalarNode(tag, event.value, mark, None, style=event.style)
        elif isinstance(event, SequenceStartEvent | MappingStartEvent):
            is_seq = isinstance(event, SequenceStartEvent)
            if tag is None or tag == "!":
                tag = _SEQ if is_seq else _MAP
            children: list[Any] = []
            if anchor is not None:
                self.open_anchors.add(anchor)
            end = SequenceEndEvent if is_seq else MappingEndEvent
            while not self.events.check_event(end):
                if is_seq:
                    children.append(self.node(depth + 1))
                else:
                    children.append((self.node(depth + 1), self.node(depth + 1)))
            self.events.get_event()
            if anchor is not None:
                self.open_anchors.discard(anchor)
            kind = SequenceNode if is_seq else MappingNode
            result = kind(tag, children, mark, None)
        else:  # pragma: no cover - the parser produces no other node events
            raise _Limit(
                f"unexpected YAML event {type(event).__name__}", mark.line + 1, mark.column + 1
            )
        if anchor is not None:
            self.anchors[anchor] = result
        return result


# --- conversion: nodes -> plain data, positions, and non-fatal errors ---------------------------


class _Converter:
    def __init__(self, doc: Document, errors: list[SpecError], filename: str) -> None:
        self.doc, self.errors, self.filename = doc, errors, filename
        self.count = 0

    def error(
        self, mark: Any, path: PathT, message: str, hint: str | None = None, skip: bool = True
    ) -> None:
        """Report a problem at `path`; with `skip`, later checks say nothing more about it."""
        if skip:
            self.doc.broken.add(path)
        self.errors.append(
            SpecError(
                self.filename, mark.line + 1, mark.column + 1, field_path(path), message, hint
            )
        )

    def tick(self, node: Any) -> None:
        """Count one value; stop when aliases have expanded the document beyond MAX_NODES."""
        self.count += 1
        if self.count > MAX_NODES:
            mark = node.mark if isinstance(node, _Alias) else node.start_mark
            raise _Limit(
                f"the document expands to more than {MAX_NODES} values (through aliases)",
                mark.line + 1,
                mark.column + 1,
                "anchors and aliases that repeat each other grow exponentially; write the values out",
            )

    def value(self, node: Any, path: PathT, key_mark: Any = None) -> Any:
        self.tick(node)
        mark = node.mark if isinstance(node, _Alias) else node.start_mark
        if isinstance(node, _Alias):
            node = node.node
        self.doc.locs[path] = Loc(
            mark.line + 1,
            mark.column + 1,
            key_mark.line + 1 if key_mark else 0,
            key_mark.column + 1 if key_mark else 0,
        )
        if isinstance(node, ScalarNode):
            return self.scalar(node, path, mark)
        if node.tag not in (_SEQ, _MAP):
            self.error(
                mark, path, f"the YAML tag {_tag(node.tag)} is not supported", "remove the tag"
            )
        if isinstance(node, SequenceNode):
            return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.mapping(node, path)

    def scalar(self, node: Any, path: PathT, mark: Any) -> Any:
        text: str = node.value
        if node.tag == _STR:
            return text
        if node.tag != _PLAIN:
            self.error(
                mark, path, f"the YAML tag {_tag(node.tag)} is not supported", "remove the tag"
            )
            return text
        self.doc.plain[path] = text
        try:
            return resolve_plain(text)
        except ValueError as exc:
            self.error(mark, path, str(exc))
            return text

    def mapping(self, node: Any, path: PathT) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            self.tick(key_node)
            key_mark = key_node.mark if isinstance(key_node, _Alias) else key_node.start_mark
            key = self.key(key_node, path, key_mark)
            if key is None:
                self.count_only(value_node)
                continue
            child = (*path, key)
            if key in out:
                self.error(
                    key_mark,
                    child,
                    f"duplicate key (first on line {first_line[key]})",
                    "a key may appear only once in a mapping; remove or merge one of the two",
                    skip=False,  # the first value stays, and is checked as usual
                )
                self.count_only(value_node)
                continue
            first_line[key] = key_mark.line + 1
            out[key] = self.value(value_node, child, key_mark)
        return out

    def key(self, key_node: Any, path: PathT, mark: Any) -> str | None:
        """The key as text. A key that is no plain name is reported (at the path it would have)."""
        node = key_node.node if isinstance(key_node, _Alias) else key_node
        if not isinstance(node, ScalarNode):
            self.error(
                mark, path, "a mapping key must be a plain name, not a list or mapping", skip=False
            )
            return None
        text: str = node.value
        child = (*path, text)
        if node.tag == _STR:
            return text
        if node.tag != _PLAIN:
            self.error(
                mark, child, f"the YAML tag {_tag(node.tag)} is not supported", "remove the tag"
            )
            return text
        try:
            resolved = resolve_plain(text)
        except ValueError:
            resolved = None
        if not isinstance(resolved, str):
            kind = "a number"
            if resolved is None:
                kind = "null"
            elif isinstance(resolved, bool):
                kind = "a boolean"
            self.error(
                mark,
                child,
                f"the key {text} is {kind}, not text" if text else "a key is empty",
                f'quote it if it is meant as a name: "{text}"' if text else None,
            )
        elif text in YAML11_BOOLS:
            self.doc.bool_word_keys[child] = text
        return text

    def count_only(self, node: Any) -> None:
        """Walk a skipped value so its aliases still count toward the expansion limit."""
        for _ in _walk(node):
            self.tick(node)


def _tag(tag: str) -> str:
    """`tag:yaml.org,2002:int` -> `!!int`, as it was probably written."""
    return tag.replace("tag:yaml.org,2002:", "!!", 1)


def _walk(node: Any) -> Iterator[Any]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, _Alias):
            item = item.node
        yield item
        if isinstance(item.value, list):
            for child in item.value:
                if isinstance(child, tuple):
                    stack.extend(child)
                else:
                    stack.append(child)


def resolve_plain(text: str) -> Any:
    """A plain scalar's value under the YAML 1.2 core schema (ValueError for absurd numbers)."""
    if text in _NULLS:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if not (text[0].isdigit() or text[0] in "+-."):
        return text
    if len(text) > _MAX_NUMBER_CHARS and any(
        regex.fullmatch(text) for regex in (_INT, _OCT, _HEX, _FLOAT)
    ):
        raise ValueError(f"the number {text[:20]}... is too long")
    if _INT.fullmatch(text):
        return int(text)
    if _OCT.fullmatch(text):
        return int(text[2:], 8)
    if _HEX.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text
