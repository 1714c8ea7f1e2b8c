"""What the admin machine and the agent on the target agree on (no imports: both sides use it)."""

PROTOCOL = 1
# The last line of the agent's output: the result record, marked so that no command output can
# be mistaken for it (a record separator character, then a name).
RESULT_MARK = b"\x1ereconciler-agent-result "
# An argv element naming a file the request carries: the agent replaces it with the file's path.
FILE_PREFIX = "@file:"
