"""The one exception type the CLI turns into a one-line message and a non-zero exit instead of a traceback."""


class EdgekitError(Exception):
    """A problem the user can fix (bad input, missing file, wrong hardware); the message says what to do."""
