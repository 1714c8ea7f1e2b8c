"""attribute_changes gives exactly what deepdiff gives (deepdiff >= 8 with
threshold_to_diff_deeper=0: one change per leaf), for records of dicts, lists and scalars:
deepdiff is the oracle here, not a dependency of the planner."""

from __future__ import annotations

from typing import Any

from deepdiff import DeepDiff
from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.diff import ABSENT, attribute_changes, dotted

keys = st.sampled_from(["a", "b", "mode", "owner", "gateway", "it's", "x.y"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.floats(allow_nan=False, min_value=-2, max_value=2),
    st.sampled_from(["", "0700", "user", "1"]),
)
records = st.recursive(
    scalars, lambda inner: st.dictionaries(keys, inner, max_size=4), max_leaves=12
).filter(lambda r: isinstance(r, dict) and bool(r))
# Inside lists deepdiff matches items by hash, and False, 0 and 0.0 (True, 1 and 1.0; -1 and -2)
# hash alike: it calls [[False]] and [[0]] equal where we (rightly) see a change. List items are
# drawn so that no two distinct values hash alike, or the oracle would be the one that is wrong.
list_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(2, 5),
    st.sampled_from([0.5, -1.5, 2.5]),
    st.sampled_from(["", "0700", "user", "1"]),
)
items = st.recursive(
    st.one_of(list_scalars, st.sampled_from(["/", "/api", "/x"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=10,
)
records_with_lists = st.dictionaries(keys, st.lists(items, max_size=5), min_size=1, max_size=3)


def by_deepdiff(desired: dict[str, Any], actual: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    found = DeepDiff(
        actual, desired, ignore_order=False, verbose_level=2, threshold_to_diff_deeper=0
    )
    out = []
    for group in ("values_changed", "type_changes"):
        out += [(p, c["old_value"], c["new_value"]) for p, c in found.get(group, {}).items()]
    out += [(p, ABSENT, v) for p, v in found.get("dictionary_item_added", {}).items()]
    out += [(p, v, ABSENT) for p, v in found.get("dictionary_item_removed", {}).items()]
    out += [(p, ABSENT, v) for p, v in found.get("iterable_item_added", {}).items()]
    out += [(p, v, ABSENT) for p, v in found.get("iterable_item_removed", {}).items()]
    return sorted(((dotted(p), b, a) for p, b, a in out), key=repr)


@given(desired=records, actual=records)
def test_the_fast_path_equals_deepdiff(desired: dict[str, Any], actual: dict[str, Any]) -> None:
    fast = [(c.path, c.before, c.after) for c in attribute_changes(desired, actual)]
    # sorted whole: dotted() maps a key with a quote (`root["it's"]`) to a path another key
    # may have too, and then only the order among equal paths would differ
    assert sorted(fast, key=repr) == by_deepdiff(desired, actual)


def test_a_mostly_different_record_is_still_one_change_per_leaf() -> None:
    # deepdiff's default threshold reported this as one change at path "" (the whole record)
    changes = attribute_changes({"a": 1, "b": 2, "c": 3, "mode": "0600"}, {"mode": "0644"})
    assert [c.path for c in changes] == ["a", "b", "c", "mode"]


def test_a_bool_is_not_the_number_it_hashes_like_inside_a_list() -> None:
    changes = attribute_changes({"owner": [[False]]}, {"owner": [[0]]})
    assert [(c.path, c.before, c.after) for c in changes] == [("owner[0][0]", 0, False)]


def test_lists_are_compared_as_deepdiff_compares_them() -> None:
    changes = attribute_changes({"paths": ["/"], "x": 1}, {"paths": ["/", "/api"], "x": 1})
    assert [(c.path, c.before, c.after) for c in changes] == [("paths[1]", "/api", ABSENT)]
    shifted = attribute_changes({"p": ["b"]}, {"p": ["a", "b"]})
    assert [(c.path, c.before, c.after) for c in shifted] == [("p[0]", "a", ABSENT)]


@given(desired=records_with_lists, actual=records_with_lists)
def test_lists_equal_deepdiff(desired: dict[str, Any], actual: dict[str, Any]) -> None:
    mine = [(c.path, c.before, c.after) for c in attribute_changes(desired, actual)]
    assert sorted(mine, key=repr) == by_deepdiff(desired, actual)


def test_a_difflib_match_is_used_only_when_it_reports_fewer_changes() -> None:
    """deepdiff's rule for lists of scalars: difflib's match when strictly shorter than the
    comparison by position (found by hypothesis: [False, None, None] -> [None, False] is three
    changes either way, and deepdiff then reports them by position)."""
    for desired, actual in [
        ({"b": [None, None, [None, False]]}, {"b": [None, None, [False, None, None]]}),
        ({"p": ["a", "b", "c", "d", "y"]}, {"p": ["x", "a", "b", "c", "d"]}),  # same length
        ({"p": ["a", "r", "s"]}, {"p": ["p", "q", "a"]}),
    ]:
        fast = [(c.path, c.before, c.after) for c in attribute_changes(desired, actual)]
        assert sorted(fast, key=repr) == by_deepdiff(desired, actual)
    shifted = attribute_changes({"p": ["a", "b", "c", "d", "y"]}, {"p": ["x", "a", "b", "c", "d"]})
    assert [(c.path, c.before, c.after) for c in shifted] == [
        ("p[0]", "x", ABSENT),
        ("p[4]", ABSENT, "y"),
    ]
