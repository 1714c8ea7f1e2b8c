"""`@frozen`: a frozen dataclass, built at a third of the cost at import.

Why: a converged `plan` imports about 170 frozen dataclasses, and on CPython 3.11 `dataclasses`
compiles each generated method (`__init__`, `__repr__`, `__eq__`, `__hash__`, `__setattr__`,
`__delattr__`) from source by its own `exec`: 3.7 M instructions a class, about 40% of a plan.
CPython 3.13 compiles them in one `exec`; on 3.11 a frozen class compiles only `__init__` (its
signature must be the class's own) and shares the other five, which are the same for every class
once they read the field names from it.

What stays exactly as `@dataclass(frozen=True)`: the class IS a dataclass (`dataclasses.fields`,
`replace`, `asdict`, `is_dataclass` and `__match_args__` work; `field()` with defaults, factories,
`init=False`, `repr=False`, `compare=False`, `hash=` and `kw_only` is honoured), the signature
of `__init__`, `__post_init__`, `repr()` text, equality (same class only, fields in order),
`hash()` of the compared fields, and `FrozenInstanceError` on assignment and deletion.
tests/test_frozen.py compares every @frozen class of the package with a real frozen dataclass
of the same fields. Refused at import: `InitVar` fields, `__slots__`, a dataclass base that is
not `@frozen` (use `@dataclass(frozen=True, ...)` for those, and for any other option). What
differs: `__dataclass_params__` describes what `dataclasses` itself generated (init, repr, eq
and frozen False), so a `@dataclass(frozen=True)` may not subclass a `@frozen` class either.
"""

from __future__ import annotations

import dataclasses
import inspect
import operator
import reprlib
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform

_C = TypeVar("_C", bound=type[Any])
_MISSING: Any = dataclasses.MISSING


@reprlib.recursive_repr()
def _repr(self: Any) -> str:
    names: tuple[str, ...] = self.__frozen_repr__
    fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
    return f"{type(self).__qualname__}({fields})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        key = type(self).__frozen_compare__  # from the class: a lambda would bind to self
        return key(self) == key(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(type(self).__frozen_hash__(self))


def _key(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """The tuple of these fields of an instance: attrgetter (C) for two or more, since == and
    hash run often (a plan compares facts; sets and dicts hash actions)."""
    if len(names) >= 2:
        return operator.attrgetter(*names)
    if names:
        name = names[0]
        return lambda instance: (getattr(instance, name),)
    return lambda instance: ()


def _frozen_attributes(cls: type[Any], names: frozenset[str]) -> None:
    """`__setattr__`/`__delattr__` as a frozen dataclass has them (a subclass that is not a
    dataclass may set attributes of its own, never a field)."""

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    for method in (__setattr__, __delattr__):
        method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
        setattr(cls, method.__name__, method)


class _Factory:
    """The default of a field with a default_factory, as dataclasses shows it: `<factory>`."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def _signature(fields: tuple[dataclasses.Field[Any], ...]) -> inspect.Signature:
    """The signature of the `__init__` dataclasses would write (refused as it refuses it)."""
    positional = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    keyword: list[inspect.Parameter] = []
    for f in fields:
        if not f.init:
            continue
        default: Any = inspect.Parameter.empty
        if f.default_factory is not _MISSING:
            default = _FACTORY
        elif f.default is not _MISSING:
            default = f.default
        elif not f.kw_only and positional[-1].default is not inspect.Parameter.empty:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
        kind = (
            inspect.Parameter.KEYWORD_ONLY if f.kw_only else inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        param = inspect.Parameter(f.name, kind, default=default, annotation=f.type)
        (keyword if f.kw_only else positional).append(param)
    return inspect.Signature(positional + keyword, return_annotation=None)


def _compile_init(cls: type[Any], fields: tuple[dataclasses.Field[Any], ...]) -> Any:
    """Compile `__init__` (one `exec`): the body `dataclasses` would write."""
    scope: dict[str, Any] = {"FACTORY": _FACTORY, "setattr": object.__setattr__}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for f in fields:
        if f.default_factory is not _MISSING:
            scope[f"factory_{f.name}"] = f.default_factory
            param = f"{f.name}=FACTORY"
            value = f"factory_{f.name}()"
            if f.init:
                value = f"{value} if {f.name} is FACTORY else {f.name}"
        elif not f.init:
            continue  # read from the class attribute (its default), as in a dataclass
        elif f.default is not _MISSING:
            scope[f"default_{f.name}"] = f.default
            param, value = f"{f.name}=default_{f.name}", f.name
        else:
            param, value = f.name, f.name
        if f.init:
            (keyword if f.kw_only else positional).append(param)
        body.append(f"setattr(self, {f.name!r}, {value})")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    params = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    exec(f"def __init__({params}):\n    " + "\n    ".join(body or ["pass"]), scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    # The annotations dataclasses gives it: the fields' (as written) and `-> None`.
    init.__annotations__ = {f.name: f.type for f in fields if f.init} | {"return": None}
    return init


def _init(cls: type[Any], fields: tuple[dataclasses.Field[Any], ...]) -> inspect.Signature:
    """Give `cls` an `__init__` that compiles the real one for the class's first instance: a
    run builds instances of about half the classes it imports (7% of a plan's instructions).
    Its signature is there from the start (`__signature__`: inspect, help, the docstring)."""
    signature = _signature(fields)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init = _compile_init(cls, fields)
        cls.__init__ = init  # two threads may both compile it: the same function either way
        init(self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__signature__ = signature  # type: ignore[attr-defined]
    cls.__init__ = __init__
    return signature


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def frozen(cls: _C) -> _C:
    """Class decorator: `cls` as `@dataclass(frozen=True)` makes it (module docstring)."""
    if "__slots__" in cls.__dict__:
        raise TypeError(f"@frozen {cls.__name__}: __slots__ is not supported, use @dataclass")
    for base in cls.__mro__[1:]:
        if dataclasses.is_dataclass(base) and not hasattr(base, "__frozen_compare__"):
            raise TypeError(f"@frozen {cls.__name__}: its base {base.__name__} is not @frozen")
    undocumented = not cls.__dict__.get("__doc__")
    if undocumented:  # written below from our own signature; dataclasses would inspect the class
        cls.__doc__ = cls.__name__
    # Read before dataclasses adds anything: what the class body itself defines.
    own_hash = cls.__dict__.get("__hash__", _MISSING)
    explicit_hash = not (own_hash is _MISSING or (own_hash is None and "__eq__" in cls.__dict__))
    dataclasses.dataclass(cls, init=False, repr=False, eq=False)
    fields = dataclasses.fields(cls)
    named = {f.name for f in fields}
    for name, f in cls.__dataclass_fields__.items():
        if name not in named and "InitVar" in str(f.type):  # ClassVars are left out too
            raise TypeError(f"@frozen {cls.__name__}.{name}: InitVar is not supported")
    signature = _init(cls, fields)
    _frozen_attributes(cls, frozenset(named))
    cls.__frozen_repr__ = tuple(f.name for f in fields if f.repr)
    cls.__frozen_compare__ = _key(tuple(f.name for f in fields if f.compare))
    cls.__frozen_hash__ = _key(
        tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))
    )
    # As dataclasses does: a method the class body defines is kept; __hash__ follows its table
    # for eq=True, frozen=True (an __eq__ of the body alone does not stop the generated hash).
    if "__repr__" not in cls.__dict__:
        setattr(cls, "__repr__", _repr)  # noqa: B010 (mypy: a method of type[Any])
    if "__eq__" not in cls.__dict__:
        setattr(cls, "__eq__", _eq)  # noqa: B010
    if not explicit_hash:
        setattr(cls, "__hash__", _hash)  # noqa: B010
    if undocumented:  # dataclasses documents a class without a docstring by its signature
        without_self = signature.replace(parameters=tuple(signature.parameters.values())[1:])
        cls.__doc__ = cls.__name__ + str(without_self).replace(" -> None", "")
    return cls
