"""A JSON codec for frozen dataclasses (probes, facts, host context), used by snapshots.

Facts describe themselves: a probe or fact class that a snapshot may hold says so where it is
defined, with the `@recorded` class decorator, and carries the rest of its codec as methods:

- `redacted(self, redaction) -> Self` (facts): what of it a snapshot may keep (default: all);
- `answer_from(self, recorded) -> fact | None` (probes): the answer a snapshot implies when it
  did not record this probe (default: None, "the snapshot cannot say");
- and, through `@records`, a module declares what a snapshot must record for any spec beyond
  the probes the kinds asked for (facts a later spec may ask for, program locations, the
  directories new profiles would live in), and through `@keeps_file_content` what of a file's
  text a snapshot may keep (default: nothing).

`review/snapshot.py` is then a generic codec: it knows no probe, fact or kind.

Encoding: a dataclass becomes an object with `"@": <class name>` and the fields that differ
from their defaults; a Path its string; a tuple a list; a dict with int keys string keys; a
`ProbeFailed` `{"@": "ProbeFailed", "message": ...}`. Decoding is guided by the type each field
is annotated with (and the value type a probe declares), checks every scalar's type, and builds
only classes in the registry it is given: a snapshot names data, never code.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    Protocol,
    TypeVar,
    Union,
    get_args,
    get_origin,
    overload,
    runtime_checkable,
)

from reconciler.core.host import HostContext
from reconciler.core.kind import Need, unmet
from reconciler.core.probe import Probe, ProbeFailed
from reconciler.frozen import frozen

if TYPE_CHECKING:
    from reconciler.spec.model import Spec

TAG = "@"
FAILED = "ProbeFailed"


class CodecError(ValueError):
    """The data does not decode to the expected type (the message says where and why)."""


class Registry:
    """The dataclasses a codec may build, by class name."""

    def __init__(self, classes: Iterable[type]) -> None:
        self.classes: dict[str, type] = {}
        for cls in classes:
            if not dataclasses.is_dataclass(cls):
                raise TypeError(f"{cls.__name__} is not a dataclass")
            self.classes[cls.__name__] = cls
        self._hints: dict[type, dict[str, Any]] = {}

    def __contains__(self, cls: type) -> bool:
        return self.classes.get(cls.__name__) is cls

    def hints(self, cls: type) -> dict[str, Any]:
        if cls not in self._hints:
            self._hints[cls] = typing.get_type_hints(cls)
        return self._hints[cls]


# --- what a snapshot may hold: registered where each class is defined ---------------------------

C = TypeVar("C", bound=type)
T = TypeVar("T")

_RECORDED: dict[str, type] = {}


def recorded(cls: C) -> C:
    """Class decorator (above `@dataclass`): snapshots may hold instances of `cls`.

    Classes are named in a snapshot by their class name, so two recorded classes may not share
    one (the second registration is an error at import time, not a silent overwrite).
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"@recorded {cls.__name__}: put it above @dataclass")
    known = _RECORDED.get(cls.__name__)
    if known is not None and known is not cls:
        raise TypeError(
            f"@recorded {cls.__module__}.{cls.__name__}: the name is taken by {known.__module__}"
        )
    _RECORDED[cls.__name__] = cls
    return cls


def recorded_classes(*extra: type) -> Registry:
    """Every `@recorded` class (plus `extra`, the snapshot's own containers)."""
    return Registry([*_RECORDED.values(), *extra])


@frozen
class Redaction:
    """What a fact's `redacted` may use: the text rule, and what to keep of a file's text."""

    text: Callable[[str], str]  # a line or command line with its secret values masked
    file_text: Callable[[Path, str], tuple[str | None, str | None]]  # (kept text, or why not)


def redact_value(value: Any, redaction: Redaction) -> Any:
    """`value` as a snapshot may hold it: each fact redacts itself (`redacted`)."""
    if isinstance(value, ProbeFailed):
        return ProbeFailed(redaction.text(str(value)))
    if isinstance(value, tuple):
        return tuple(redact_value(item, redaction) for item in value)
    redacted = getattr(value, "redacted", None)
    return redacted(redaction) if callable(redacted) else value


class RecordedHost(Protocol):
    """What a probe's `answer_from` may ask of a snapshot (see review/snapshot.py)."""

    source: str  # "the snapshot", or its file name
    host: HostContext  # the recorded host; its lookups answer from the snapshot
    working_directory: Path | None  # where `reconciler probe` ran
    listeners: tuple[Any, ...] | None  # every listening TCP socket; None: not recorded

    def fact(self, probe: Probe[Any]) -> Any:
        """The recorded fact of `probe`, or None when it was not recorded."""

    def facts_of(self, cls: type[T]) -> list[T]:
        """Every recorded fact of type `cls`."""

    def known_missing(self, path: Path) -> bool:
        """True when the snapshot shows that `path` cannot exist (never a guess)."""


@runtime_checkable
class AnswersFromSnapshot(Protocol):
    """A probe that can derive its answer from a snapshot that did not record it."""

    def answer_from(self, recorded: RecordedHost) -> Any:
        """The fact the snapshot implies, or None when it cannot tell."""


@frozen
class Wanted:
    """What a snapshot records for a spec beyond the facts its kinds asked for."""

    probes: tuple[Probe[Any], ...] = ()
    programs: tuple[str, ...] = ()  # where these are (`locate`)
    directories: tuple[tuple[Path, tuple[str, ...]], ...] = ()  # (dir, name prefixes) to list


@frozen
class FileTextContext:
    """What a `@keeps_file_content` rule is given besides the file: the spec, the host, and the
    text rule (`text(s)` masks secret-looking values)."""

    spec: Spec
    host: HostContext
    text: Callable[[str], str]


WantedFor = Callable[["Spec", HostContext], Wanted]
FileTextRule = Callable[[FileTextContext, Path, str], tuple[str | None, str | None] | None]

# Each registered with what it needs of the host (core/kind.py NEEDS): one that is not met
# skips the function, as the planner skips a kind, instead of a check inside each.
_WANTED: list[tuple[WantedFor, frozenset[Need]]] = []
_FILE_TEXT_RULES: list[tuple[FileTextRule, frozenset[Need]]] = []


@overload
def records(fn: WantedFor) -> WantedFor: ...
@overload
def records(*, needs: frozenset[Need]) -> Callable[[WantedFor], WantedFor]: ...
def records(
    fn: WantedFor | None = None, *, needs: frozenset[Need] = frozenset()
) -> WantedFor | Callable[[WantedFor], WantedFor]:
    """Decorator: `fn(spec, host)` says what a snapshot must also record for a spec
    (`@records(needs=NEEDS_USER)`: only where the spec's user exists)."""

    def register(function: WantedFor) -> WantedFor:
        _WANTED.append((function, needs))
        return function

    return register if fn is None else register(fn)


def wanted(spec: Spec, host: HostContext) -> list[Wanted]:
    """What every registered module whose needs are met wants recorded for `spec` on `host`."""
    return [fn(spec, host) for fn, needs in _WANTED if unmet(needs, host) is None]


@overload
def keeps_file_content(rule: FileTextRule) -> FileTextRule: ...
@overload
def keeps_file_content(*, needs: frozenset[Need]) -> Callable[[FileTextRule], FileTextRule]: ...
def keeps_file_content(
    rule: FileTextRule | None = None, *, needs: frozenset[Need] = frozenset()
) -> FileTextRule | Callable[[FileTextRule], FileTextRule]:
    """Decorator: `rule(context, path, text)` -> (kept text, error) for the files it owns,
    None for the others. A file no rule owns keeps no content in a snapshot."""

    def register(function: FileTextRule) -> FileTextRule:
        _FILE_TEXT_RULES.append((function, needs))
        return function

    return register if rule is None else register(rule)


def file_text_rules(host: HostContext) -> tuple[FileTextRule, ...]:
    """The registered rules whose needs are met on `host`, in registration order."""
    return tuple(rule for rule, needs in _FILE_TEXT_RULES if unmet(needs, host) is None)


# --- encoding ------------------------------------------------------------------------------------


def encode(value: Any, registry: Registry) -> Any:
    """`value` as JSON-ready data (raises TypeError for a class the registry does not know)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, ProbeFailed):
        return {TAG: FAILED, "message": str(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [encode(item, registry) for item in value]
    if isinstance(value, Mapping):
        return {str(key): encode(item, registry) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        if cls not in registry:
            raise TypeError(f"{cls.__name__} is not registered with the snapshot codec")
        out: dict[str, Any] = {TAG: cls.__name__}
        for field in dataclasses.fields(value):
            current = getattr(value, field.name)
            if _is_default(field, current):
                continue
            out[field.name] = encode(current, registry)
        return out
    raise TypeError(f"cannot encode {type(value).__name__}")


def _is_default(field: dataclasses.Field[Any], value: Any) -> bool:
    if field.default is not dataclasses.MISSING:
        return bool(value == field.default)
    if field.default_factory is not dataclasses.MISSING:
        return bool(value == field.default_factory())
    return False


# --- decoding ------------------------------------------------------------------------------------


def decode(data: Any, hint: Any, registry: Registry, where: str = "$") -> Any:
    """`data` as a value of type `hint` (Any: JSON as it is)."""
    if hint is Any:
        return data
    origin = get_origin(hint)
    args = get_args(hint)
    if origin in (Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        problems = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return decode(data, arg, registry, where)
            except CodecError as exc:
                problems.append(str(exc))
        raise CodecError("; ".join(problems) or f"{where}: unexpected null")
    if origin is Literal:
        if data in args:
            return data
        raise CodecError(f"{where}: {data!r} is not one of {', '.join(map(repr, args))}")
    if origin is tuple:
        if not isinstance(data, list):
            raise CodecError(f"{where}: expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(
                decode(item, args[0], registry, f"{where}[{i}]") for i, item in enumerate(data)
            )
        if len(args) != len(data):
            raise CodecError(f"{where}: expected {len(args)} items")
        return tuple(
            decode(item, arg, registry, f"{where}[{i}]")
            for i, (item, arg) in enumerate(zip(data, args, strict=True))
        )
    if origin in (dict, Mapping):
        if not isinstance(data, dict):
            raise CodecError(f"{where}: expected an object")
        key_type, value_type = args or (str, Any)
        return {
            _key(key, key_type, where): decode(item, value_type, registry, f"{where}.{key}")
            for key, item in data.items()
        }
    if hint is type(None):
        if data is None:
            return None
        raise CodecError(f"{where}: expected null")
    if hint is Path:
        return Path(_scalar(data, str, where))
    if hint is bool:
        return _scalar(data, bool, where)
    if hint is int:
        if isinstance(data, bool):
            raise CodecError(f"{where}: expected an integer")
        return _scalar(data, int, where)
    if hint is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise CodecError(f"{where}: expected a number")
        return float(data)
    if hint is str:
        return _scalar(data, str, where)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return decode_dataclass(data, registry, where, expected=hint)
    raise CodecError(f"{where}: cannot decode a {hint!r}")


def decode_dataclass(
    data: Any, registry: Registry, where: str = "$", expected: type | None = None
) -> Any:
    """An object tagged with a registered class name -> that dataclass (or a ProbeFailed)."""
    if not isinstance(data, dict) or not isinstance(data.get(TAG), str):
        raise CodecError(f"{where}: expected an object with {TAG!r} naming its type")
    name = data[TAG]
    if name == FAILED:
        return ProbeFailed(_scalar(data.get("message"), str, f"{where}.message"))
    cls = registry.classes.get(name)
    if cls is None:
        raise CodecError(f"{where}: unknown type {name!r}")
    if expected is not None and not issubclass(cls, expected):
        raise CodecError(f"{where}: expected a {expected.__name__}, found {name}")
    hints = registry.hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names - {TAG})
    if unknown:
        raise CodecError(f"{where}: unknown field(s) of {name}: {', '.join(unknown)}")
    kwargs = {
        key: decode(value, hints[key], registry, f"{where}.{key}")
        for key, value in data.items()
        if key != TAG
    }
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise CodecError(f"{where}: {name}: {exc}") from None


def value_type(probe_class: type) -> Any:
    """The fact type a probe class declares (`PathProbe(Probe[PathState])` -> PathState)."""
    for klass in probe_class.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            origin = get_origin(base)
            if isinstance(origin, type) and issubclass(origin, Probe):
                (arg,) = get_args(base)
                if not isinstance(arg, typing.TypeVar):
                    return arg
    return Any


def decode_fact(data: Any, probe: Probe[Any], registry: Registry, where: str) -> Any:
    """A recorded fact of `probe`: its declared value type, or the failure it recorded."""
    if isinstance(data, dict) and data.get(TAG) == FAILED:
        return decode_dataclass(data, registry, where)
    return decode(data, value_type(type(probe)), registry, where)


def _key(key: str, key_type: Any, where: str) -> Any:
    if key_type is int:
        try:
            return int(key)
        except ValueError:
            raise CodecError(f"{where}: key {key!r} is not an integer") from None
    return key


def _scalar(data: Any, kind: type, where: str) -> Any:
    if not isinstance(data, kind):
        raise CodecError(f"{where}: expected {kind.__name__}, found {type(data).__name__}")
    return data
