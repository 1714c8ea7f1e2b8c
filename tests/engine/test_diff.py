from __future__ import annotations

from reconciler.core.action import AttributeChange
from reconciler.core.diff import attribute_changes, dotted


def test_null_to_value_is_one_change() -> None:
    assert attribute_changes({"operator": "user"}, {"operator": None}) == (
        AttributeChange("operator", None, "user"),
    )


def test_nested_added_removed_and_sensitive() -> None:
    changes = attribute_changes(
        {"gateway": {"port": 18789, "auth": {"token": "new"}}},
        {"gateway": {"port": 18000, "mode": "remote", "auth": {"token": "old"}}},
        sensitive=("gateway.auth",),
    )
    by_path = {c.path: c for c in changes}
    assert by_path["gateway.port"] == AttributeChange("gateway.port", 18000, 18789)
    assert by_path["gateway.mode"].after == "(absent)"
    assert by_path["gateway.auth.token"].sensitive
    assert [c.path for c in changes] == sorted(by_path)


def test_equal_records_have_no_changes() -> None:
    assert attribute_changes({"a": [1, 2]}, {"a": [1, 2]}) == ()


def test_dotted_paths() -> None:
    assert dotted("root['gateway']['tailscale']['mode']") == "gateway.tailscale.mode"
    assert dotted("root['serve'][0]['https']") == "serve[0].https"


def test_creation_and_removal_name_every_key() -> None:
    created = attribute_changes({"target": "http://127.0.0.1:1", "funnel": False}, {})
    assert [(c.path, c.before, c.after) for c in created] == [
        ("funnel", "(absent)", False),
        ("target", "(absent)", "http://127.0.0.1:1"),
    ]
    removed = attribute_changes({}, {"target": "x"})
    assert [(c.path, c.before, c.after) for c in removed] == [("target", "x", "(absent)")]
