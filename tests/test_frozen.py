"""`@frozen` (reconciler/frozen.py) behaves as `@dataclass(frozen=True)`, compared side by side.

Each case is one class body decorated both ways; then every @frozen class of the package is
compared with a real frozen dataclass of the same fields (signature, repr, ==, hash, replace,
asdict, frozenness).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import pickle
import pkgutil
from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any, ClassVar

import pytest

import reconciler
from reconciler import frozen as frozen_module
from reconciler.frozen import frozen


def _plain(deco: Callable[[type], type]) -> type:
    @deco
    class Plain:
        """Fields only."""

        a: int
        b: str = "x"
        c: tuple[str, ...] = ()

    return Plain


def _options(deco: Callable[[type], type]) -> type:
    @deco
    class Options:
        """Every field() option dataclasses honours in a frozen class."""

        a: int
        hidden: str = field(default="h", repr=False)
        ignored: int = field(default=0, compare=False)
        listed: list[int] = field(default_factory=list, hash=False)
        derived: int = field(default=7, init=False)
        made: dict[str, int] = field(default_factory=dict, init=False, compare=False)
        late: int = field(default=3, kw_only=True)
        must: int = field(kw_only=True, default=5)
        counter: ClassVar[int] = 0

    return Options


def _post_init(deco: Callable[[type], type]) -> type:
    @deco
    class Checked:
        """__post_init__ runs after the fields are set and may refuse."""

        port: int

        def __post_init__(self) -> None:
            if self.port < 0:
                raise ValueError("negative port")
            object.__setattr__(self, "_seen", True)

    return Checked


def _own_methods(deco: Callable[[type], type]) -> type:
    @deco
    class Own:
        """A body's own __repr__ and __eq__ are kept; the hash is still generated."""

        a: int
        b: int = 0

        def __repr__(self) -> str:
            return f"<own {self.a}>"

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Own) and other.a == self.a

    return Own


def _own_hash(deco: Callable[[type], type]) -> type:
    @deco
    class OwnHash:
        """A body's own __hash__ is kept."""

        a: int

        def __hash__(self) -> int:
            return 42

    return OwnHash


def _inherited(deco: Callable[[type], type]) -> type:
    @deco
    class Base:
        """A base."""

        a: int
        b: str = "b"

    @deco
    class Child(Base):
        """Adds a field with a default; inherits the others in order."""

        c: int = 3

    return Child


def _undocumented(deco: Callable[[type], type]) -> type:
    @deco
    class Bare:
        a: int
        b: int = 2

    return Bare


CASES: dict[str, tuple[Callable[[Callable[[type], type]], type], tuple[Any, ...], dict[str, Any]]]
CASES = {
    "plain": (_plain, (1,), {"b": "y"}),
    "options": (_options, (1,), {"hidden": "z", "ignored": 9, "late": 4}),
    "post_init": (_post_init, (8080,), {}),
    "own_methods": (_own_methods, (1,), {"b": 2}),
    "own_hash": (_own_hash, (1,), {}),
    "inherited": (_inherited, (1,), {"c": 4}),
    "undocumented": (_undocumented, (1,), {}),
}


def _pair(name: str) -> tuple[Any, Any, tuple[Any, ...], dict[str, Any]]:
    build, args, kwargs = CASES[name]
    return build(frozen), build(dataclass(frozen=True)), args, kwargs


def _signature(cls: type) -> list[tuple[str, Any, bool]]:
    """Names, kinds and whether each has a default (a factory's default is a sentinel)."""
    params = inspect.signature(cls).parameters.values()
    return [(p.name, p.kind, p.default is not inspect.Parameter.empty) for p in params]


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_frozen_class_behaves_as_a_frozen_dataclass(name: str) -> None:
    ours, theirs, args, kwargs = _pair(name)
    assert dataclasses.is_dataclass(ours)
    assert _signature(ours) == _signature(theirs)
    assert ours.__match_args__ == theirs.__match_args__
    assert [f.name for f in dataclasses.fields(ours)] == [
        f.name for f in dataclasses.fields(theirs)
    ]
    assert (ours.__doc__ or "").replace(ours.__qualname__, "") == (theirs.__doc__ or "").replace(
        theirs.__qualname__, ""
    )
    a, b = ours(*args, **kwargs), theirs(*args, **kwargs)
    assert repr(a) == repr(b)
    assert vars(a) == vars(b)
    assert dataclasses.asdict(a) == dataclasses.asdict(b)
    assert hash(a) == hash(b) if type(b).__hash__ is not None else type(a).__hash__ is None
    same, default = ours(*args, **kwargs), ours(*args)
    assert (a == same) == (b == theirs(*args, **kwargs))
    assert (a == default) == (b == theirs(*args))
    assert (a != default) == (b != theirs(*args))
    assert (a == b) is False  # another class: NotImplemented both ways
    changed = dataclasses.replace(a, a=a.a + 1) if "a" in vars(a) else None
    if changed is not None:
        assert vars(changed) == vars(dataclasses.replace(b, a=b.a + 1))
    for instance in (a, b):
        with pytest.raises(FrozenInstanceError):
            instance.a = 5
        with pytest.raises(FrozenInstanceError):
            del instance.a
        with pytest.raises(FrozenInstanceError):
            instance.other = 1  # a frozen dataclass refuses new attributes too
    assert copy.deepcopy(a) == a


def test_post_init_refuses_as_in_a_dataclass() -> None:
    ours, theirs, _, _ = _pair("post_init")
    for cls in (ours, theirs):
        with pytest.raises(ValueError, match="negative port"):
            cls(-1)


def test_missing_and_unknown_arguments_fail_alike() -> None:
    ours, theirs, _, _ = _pair("options")
    for call in (lambda c: c(), lambda c: c(1, nope=2), lambda c: c(1, "h", 0, [], 3)):
        with pytest.raises(TypeError) as mine:
            call(ours)
        with pytest.raises(TypeError) as real:
            call(theirs)
        assert str(mine.value).split("()")[-1] == str(real.value).split("()")[-1]


def test_a_recursive_value_repr_stops_as_dataclasses_does() -> None:
    ours, theirs, _, _ = _pair("plain")
    for cls in (ours, theirs):
        items: list[Any] = []
        value = cls(1, "x", (items,))
        items.append(value)
        assert repr(value).endswith("c=([...],))")


def test_what_cannot_be_frozen_is_refused_at_import() -> None:
    with pytest.raises(TypeError, match="InitVar"):

        @frozen
        class WithInitVar:
            secret: dataclasses.InitVar[str]

    with pytest.raises(TypeError, match="not @frozen"):

        @dataclass(frozen=True)
        class Base:
            a: int

        @frozen
        class Child(Base):
            b: int = 0

    with pytest.raises(TypeError, match="follows default argument"):

        @frozen
        class Order:
            a: int = 0
            b: int  # type: ignore[misc]


def _package_frozen() -> list[type]:
    found: set[type] = set()
    for module in pkgutil.walk_packages(reconciler.__path__, "reconciler."):
        if module.name.endswith("__main__"):  # that one runs the command line
            continue
        for value in vars(importlib.import_module(module.name)).values():
            if isinstance(value, type) and "__frozen_compare__" in vars(value):
                found.add(value)
    return sorted(found, key=lambda c: (c.__module__, c.__qualname__))


def test_every_frozen_class_of_the_package_has_the_dataclass_signature_and_methods() -> None:
    """Against a real frozen dataclass made of the same fields: the same __init__ signature,
    and for instances built from distinct markers, the same repr, ==, hash and frozenness."""
    found = _package_frozen()
    assert len(found) > 50  # the plan path's classes are @frozen
    skipped = 0
    for cls in found:
        fields = dataclasses.fields(cls)
        twin = dataclasses.make_dataclass(
            cls.__qualname__,
            [
                (
                    f.name,
                    f.type,
                    field(
                        default=f.default,
                        default_factory=f.default_factory,
                        init=f.init,
                        repr=f.repr,
                        hash=f.hash,
                        compare=f.compare,
                        kw_only=f.kw_only,
                    ),
                )
                for f in fields
            ],
            frozen=True,
        )
        assert _signature(cls) == _signature(twin), cls
        shared = (frozen_module._repr, frozen_module._eq, frozen_module._hash)
        own = [getattr(cls, n) for n in ("__repr__", "__eq__", "__hash__")] != list(shared)
        if own or hasattr(cls, "__post_init__"):
            skipped += 1
            continue  # its own methods or checks: the cases above cover them
        markers = {f.name: object() for f in fields if f.init}
        ours, theirs = cls(**markers), twin(**markers)
        assert _signature(cls) == _signature(twin), cls  # __init__ compiled on first use
        assert repr(ours) == repr(theirs), cls
        assert ours == cls(**markers), cls
        assert (ours != cls(**markers)) is False, cls
        assert hash(ours) == hash(theirs), cls
        with pytest.raises(FrozenInstanceError):
            setattr(ours, fields[0].name if fields else "x", None)
        assert vars(pickle.loads(pickle.dumps(ours))).keys() == vars(ours).keys(), cls
    assert skipped < len(found) / 4  # most are compared here
