"""The one error type for user mistakes.

Anything the user can fix (a malformed input line, a bad config key, a missing
file, a checksum mismatch) raises :class:`RecscaleError` with a message naming the
file, line, key or value and what is allowed. The CLI prints it as one line and
exits with code 2. Programming errors are left to raise as themselves.
"""


class RecscaleError(Exception):
    """A user error; its message is complete on one line."""
