"""The one exception type the CLI turns into a single-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: a file, field or setting. The message names the bad item."""
