"""The admin side of the agent protocol, against a scripted session (the record parsing only;
the transport is tested against a real sshd in tests/shell/test_ssh.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from reconciler.remote.client import RemoteReconciler
from reconciler.remote.protocol import RESULT_MARK
from reconciler.shell.ssh import RemoteResult, SshError, SshTarget


class _Scripted:
    """An SshSession that answers every command with the same stdout lines."""

    target = SshTarget("vm102", "admin")

    def __init__(self, lines: Sequence[bytes]) -> None:
        self.lines = lines

    def stream(self, argv: Sequence[str], **kw: object) -> Iterator[bytes | RemoteResult]:
        yield from self.lines
        yield RemoteResult(0, b"", b"")


@pytest.mark.parametrize(
    "record",
    [
        b"{not json",
        b"[1, 2]",
        b'{"exit": "0", "files": {}}',
        b'{"exit": 0}',
        b'{"exit": 0, "files": {"s.json": 7}}',
        b'{"exit": 0, "files": {"s.json": "not base64!"}}',
        b'{"exit": true, "files": {}}',
    ],
)
def test_a_malformed_result_record_is_an_error_that_says_so(record: bytes) -> None:
    remote = RemoteReconciler(_Scripted([b"output\n", RESULT_MARK + record + b"\n"]))  # type: ignore[arg-type]
    with pytest.raises(SshError, match="result record is malformed"):
        remote.call(["--version"])


def test_a_good_record_is_read() -> None:
    lines: list[bytes] = []
    record = b'{"exit": 2, "files": {"s.json": "e30="}, "run": null}'
    remote = RemoteReconciler(_Scripted([b"out\n", b"\n", RESULT_MARK + record + b"\n"]))  # type: ignore[arg-type]
    result = remote.call(["plan"], on_output=lines.append)
    assert (result.exit_code, dict(result.files), lines) == (2, {"s.json": b"{}"}, [b"out\n"])
