"""What the admin machine and the agent on the target agree on (no imports: both sides use it)."""

PROTOCOL = 1
# The last line of the agent's output: the result record, marked so that no command output can
# be mistaken for it (a record separator character, then a name).
RESULT_MARK = b"\x1ereconciler-agent-result "
# Written to stderr by the agent every few seconds while it runs: the client's proof of life.
HEARTBEAT = b"\x1ereconciler-agent-alive\n"
# An argv element naming a file the request carries: the agent replaces it with the file's path.
FILE_PREFIX = "@file:"


class Side:
    """Which side of the connection this process is. The agent says it is on the target, so a
    command it runs never reaches onward over SSH: a spec with `host.ssh` whose host name is not
    the target's is the host check's error there, not a second connection."""

    on_target = False
