"""The errors the command line reports as one ``error: ...`` line and exit status 2."""


class UsageError(Exception):
    """An error the user caused and can fix: bad option value, unknown data set, bad file."""


class CommandLineError(UsageError):
    """A malformed command line (unknown option, bad value)."""
